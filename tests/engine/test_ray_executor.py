"""The Ray executor (engine/ray_executor.py) on a real local Ray (tests/conftest.py): the process
executor's tasks on a state actor, bit for bit the local executor's and the hand-written loop's results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

import cardloop
from cardloop import CardFailed
from cardloop.engine import ray_executor
from cardloop.engine.ray_executor import actor_options
from cardloop.errors import InvalidOption
from cardloop.examples import basic_training_loop
from cardloop.store.records import RunRecords
from tests.engine.test_blocks import KILLER, hand_loop, repeated_batch
from tests.oracle import assert_same_weights, hand_written_loop

BATCHES = 3

RESOURCE_CARDS = '''
import os
import signal

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.kinds import INFO, MODEL


@card("test_fake_gpu_probe", title="Fake GPU probe", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("assigned", INFO)], config=CardConfig, resources={"fake_gpu": 1})
def probe(config, model):
    """What Ray gave the process it runs in."""
    import ray

    return {"assigned": dict(ray.get_runtime_context().get_assigned_resources())}


@card("test_needs_a_tpu", title="Needs a TPU", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("assigned", INFO)], config=CardConfig, resources={"tpu": 1})
def needs_a_tpu(config, model):
    return {"assigned": {}}


@card("test_kill_always", title="Kill always", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("assigned", INFO)], config=CardConfig)
def kill_always(config, model):
    """SIGKILL the process it runs in, every time."""
    os.kill(os.getpid(), signal.SIGKILL)
'''


WAITING_CARDS = '''
import os
import time
from pathlib import Path

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import SCALAR


class WaitConfig(CardConfig):
    signal: str = ""
    marker: str = ""


@card("test_wait_for_driver", title="Wait for the driver", category="test", inputs=[Port("iteration", SCALAR)],
      outputs=[Port("iteration", SCALAR)], config=WaitConfig)
def wait_for_driver(config, iteration):
    """Append its process id to `marker`; from iteration 1 on, wait for the file `signal` (which the run's process
    writes once it has seen the events of iteration 0), failing after 5 minutes without it."""
    with open(config.marker, "a") as marker:
        marker.write(f"{os.getpid()}\\n")
    if iteration >= 1:
        for _ in range(30000):
            if Path(config.signal).exists():
                break
            time.sleep(0.01)
        else:
            raise CardError("the run's process never saw the events of iteration 0")
    return {"iteration": iteration}
'''


pytestmark = pytest.mark.usefixtures("ray_without_actors")


@pytest.fixture(scope="module")
def resource_cards(tmp_path_factory):
    """The card file of the resource tests, written once (a card type is registered once per process)."""
    path = tmp_path_factory.mktemp("cards") / "resource_cards.py"
    path.write_text(RESOURCE_CARDS)
    return path


@pytest.fixture(scope="module")
def waiting_cards(tmp_path_factory):
    path = tmp_path_factory.mktemp("cards") / "waiting_cards.py"
    path.write_text(WAITING_CARDS)
    return path


def waiting_blocks(csv, signal, marker, epochs=3):
    """Nested loop blocks whose epochs start with a card that waits, from the second epoch on, for `signal`."""
    pipeline = repeated_batch(csv, epochs=epochs)
    body = pipeline.card("epochs").body.cards
    body.insert(0, body[0].__class__(id="wait", type="test_wait_for_driver", inputs={"iteration": "epochs.iteration"},
                                     config={"signal": str(signal), "marker": str(marker)}))
    return pipeline


def loop(csv, batches=BATCHES, **options):
    return basic_training_loop(path=str(csv), input_dim=4, layers=(8,), prepare=False, batches=batches,
                               batch_size=16, optimizer_type="sgd", learning_rate=0.05, **options)


def test_an_unrolled_loop_on_ray_trains_the_hand_written_loops_weights_bit_for_bit(regression_csv, tmp_path):
    pipeline = loop(regression_csv)
    on_ray = cardloop.run(pipeline, store=tmp_path / "ray", executor="ray", threads=1)
    local = cardloop.run(pipeline, store=tmp_path / "local", executor="local", threads=1)
    assert on_ray.status == "succeeded" and on_ray.executed == [c.id for c in pipeline.cards]
    model = cardloop.load_output(on_ray.run_id, f"step{BATCHES - 1}", "model", store=tmp_path / "ray")
    assert_same_weights(model, hand_written_loop(regression_csv, batches=BATCHES, batch_size=16, layers=[8],
                                                 optimizer_type="sgd", learning_rate=0.05))
    assert on_ray.metrics() == local.metrics()


def test_nested_loop_blocks_on_ray_train_the_hand_written_loops_weights_bit_for_bit(regression_csv, store):
    events = []
    result = cardloop.run(repeated_batch(regression_csv, epochs=2, steps=2), store=store, executor="ray", threads=1,
                          progress=events.append)
    model, _ = hand_loop(regression_csv, 2, 2)
    assert_same_weights(cardloop.load_output(result.run_id, "epochs", "model", store=store), model)
    done = [e.card_id for e in events if e.kind == "done" and "[" in (e.card_id or "")]
    assert done[:2] == ["epochs[0].steps[0].zero", "epochs[0].steps[0].fwd"]  # the body's events reach the run


def test_a_state_actor_is_started_once_and_reused_by_later_runs(regression_csv, store):
    first = cardloop.run(loop(regression_csv, batches=1), store=store, executor="ray", threads=1)
    (warm,) = ray_executor._workers.values()
    pid = warm.pid()
    second = cardloop.run(loop(regression_csv, batches=2), store=store, executor="ray", threads=1)
    assert list(ray_executor._workers.values()) == [warm] and warm.pid() == pid
    assert second.cached and first.cached == []


def test_a_run_on_ray_records_and_stores_what_the_same_run_on_the_local_executor_does(regression_csv, tmp_path):
    """Per card: its status, which outputs are stored (the rest recorded by their summaries), its metrics; and the
    snapshots of the training state (under persist `checkpoint`: the final state)."""
    recorded = {}
    for executor in ("ray", "local"):
        result = cardloop.run(loop(regression_csv), store=tmp_path / executor, executor=executor, threads=1)
        records = RunRecords(tmp_path / executor / "runs.sqlite")
        recorded[executor] = ([(e.card_id, e.status, sorted(p for p, out in e.outputs.items() if out.get("digest")))
                               for e in records.card_executions(result.run_id)],
                              [(m.card_id, m.name, m.step, m.value) for m in records.metrics(result.run_id)],
                              [(s.card_id, s.group, s.version) for s in records.state_snapshots(result.run_id)])
    assert recorded["ray"] == recorded["local"] and recorded["ray"][2]  # the final state's snapshot at least


def test_a_later_run_on_ray_takes_from_the_cache_what_it_would_take_on_the_local_executor(regression_csv, tmp_path):
    """What a run on Ray stores is what the local executor stores (docs/ray.md): the same cards come from the cache
    in a longer run, and the same cards run again (those whose outputs were only read, never stored)."""
    cached = {}
    for executor in ("ray", "local"):
        store = tmp_path / executor
        cardloop.run(loop(regression_csv, batches=1), store=store, executor=executor, threads=1)
        cached[executor] = cardloop.run(loop(regression_csv, batches=2), store=store, executor=executor,
                                        threads=1).cached
    assert cached["ray"] == cached["local"] and "step0" in cached["ray"]


def test_a_card_failing_on_ray_is_card_failed_naming_the_card(regression_csv, store):
    pipeline = loop(regression_csv, batches=8)  # 100 rows in batches of 16 make 7 batches: batch7 fails
    with pytest.raises(CardFailed) as failed:
        cardloop.run(pipeline, store=store, executor="ray", threads=1)
    assert (failed.value.card_id, failed.value.card_type) == ("batch7", "training_prepare_batch")
    assert failed.value.result.status == "failed"


def test_a_ray_address_with_another_executor_is_refused_naming_the_option(regression_csv, store):
    with pytest.raises(InvalidOption, match="ray_address is for the ray executor; this run's executor is 'local'"):
        cardloop.run(loop(regression_csv), store=store, ray_address="127.0.0.1:6379")


def with_card(pipeline, card_type, card_id="probe"):
    """The one-batch loop, then a card of `card_type` reading its model."""
    pipeline.add(card_type, card_id, model=pipeline.card("step0")["model"])
    return pipeline


def test_a_card_declaring_a_custom_resource_runs_on_an_actor_holding_it(regression_csv, store, resource_cards):
    result = cardloop.run(with_card(loop(regression_csv, batches=1), "test_fake_gpu_probe"), store=store,
                          executor="ray", threads=1, cards=[resource_cards], persist="all", keep_outputs=True)
    assert result.outputs["probe"]["assigned"].get("fake_gpu") == 1


def test_a_custom_resource_no_node_has_is_refused_naming_the_card_before_the_run_is_recorded(
        regression_csv, store, resource_cards):
    with pytest.raises(InvalidOption, match="card 'probe' asks for 1 of the resource 'tpu', which no node"):
        cardloop.run(with_card(loop(regression_csv, batches=1), "test_needs_a_tpu"), store=store, executor="ray",
                     threads=1, cards=[resource_cards])
    assert RunRecords(store / "runs.sqlite").list_runs(10) == []


def test_a_model_on_device_cuda_is_refused_where_no_node_has_a_gpu_before_the_run_is_recorded(regression_csv, store):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("model").config["device"] = "cuda"
    with pytest.raises(InvalidOption) as refused:
        cardloop.run(pipeline, store=store, executor="ray", threads=1)
    assert str(refused.value) == (
        "card 'model' needs a GPU (device: cuda, or resources gpu), but no node of the Ray cluster has one; set "
        "device: cpu (or auto) and leave gpu out of its resources, or run on a cluster with GPUs")
    assert RunRecords(store / "runs.sqlite").list_runs(10) == []


def test_the_cli_refuses_a_model_on_device_cuda_on_a_cluster_without_gpus_in_one_sentence(
        ray_cluster, regression_csv, store, tmp_path):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("model").config["device"] = "cuda"
    address = ray_cluster.get_runtime_context().gcs_address  # the session's Ray, joined by the CLI's process
    done = subprocess.run([sys.executable, "-m", "cardloop.cli", "run", str(pipeline.save(tmp_path / "p.yaml")),
                           "--store", str(store), "--executor", "ray", "--ray-address", address],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, ray_executor.LOOPBACK_SWITCH: "0"})  # 127.0.0.1 stays loopback
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "card 'model' needs a GPU (device: cuda, or resources gpu), but no node of the Ray cluster has one; set " \
           "device: cpu (or auto)" in " ".join(done.stderr.split())
    assert RunRecords(store / "runs.sqlite").list_runs(10) == []


def schedule_of(pipeline):
    """The plan of `pipeline` and a schedule running all of it (for actor_options, which needs no cluster)."""
    from cardloop.engine.plan import plan_pipeline
    from cardloop.engine.resolve import Schedule

    plan = plan_pipeline(pipeline)
    return plan, Schedule(run=list(plan.cards), skipped=[], value_loads={}, state_loads={})


def test_gpu_is_asked_for_only_where_a_node_has_gpus(regression_csv):
    plan, work = schedule_of(loop(regression_csv, batches=1))  # model_define declares {"gpu": 1}
    assert actor_options(plan, work, [{"CPU": 2}]) == {"num_cpus": 1}
    assert actor_options(plan, work, [{"CPU": 2}, {"CPU": 2, "GPU": 1}]) == {"num_cpus": 1, "num_gpus": 1}


def test_a_model_on_device_cuda_asks_for_a_gpu(regression_csv):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("model").config["device"] = "cuda"
    assert actor_options(*schedule_of(pipeline), [{"CPU": 2, "GPU": 1}]) == {"num_cpus": 1, "num_gpus": 1}
    pipeline.card("model").resources = {"gpu": 0.5}  # a share of one GPU
    assert actor_options(*schedule_of(pipeline), [{"CPU": 2, "GPU": 1}]) == {"num_cpus": 1, "num_gpus": 0.5}


def test_a_model_on_device_cuda_with_no_gpu_in_its_resources_is_refused_naming_the_card(regression_csv):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("model").config["device"] = "cuda"
    pipeline.card("model").resources = {"gpu": 0}
    with pytest.raises(InvalidOption, match=r"^card 'model' has device: cuda but resources gpu: 0; give it a GPU "
                                            r"\(gpu: 1, or a share such as 0.5\) or set device: cpu$"):
        actor_options(*schedule_of(pipeline), [{"CPU": 2, "GPU": 1}])


def test_resources_in_the_pipeline_override_the_card_types_and_become_actor_options(regression_csv):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("model").resources = {"cpu": 2, "memory": "4e9", "fake_gpu": 1}
    options = actor_options(*schedule_of(pipeline), [{"CPU": 1}, {"CPU": 4, "memory": 8e9, "fake_gpu": 1}])
    assert options == {"num_cpus": 2, "memory": 4_000_000_000, "resources": {"fake_gpu": 1}}


def test_a_zero_amount_in_the_pipeline_asks_for_none_of_a_resource(regression_csv):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("model").resources = {"cpu": 0, "gpu": 0, "memory": 0, "fake_gpu": 0}
    assert actor_options(*schedule_of(pipeline), [{"CPU": 2, "GPU": 1}]) == {"num_cpus": 0}


def test_a_gpu_the_pipeline_asks_for_is_refused_where_no_node_has_one(regression_csv):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("step0").resources = {"gpu": 1}
    with pytest.raises(InvalidOption, match="^card 'step0' needs a GPU"):
        actor_options(*schedule_of(pipeline), [{"CPU": 2}])


def test_a_blocks_resources_reach_the_actor_through_its_body_cards(regression_csv):
    pipeline = repeated_batch(regression_csv, epochs=1, steps=1)
    steps = next(card for card in pipeline.card("epochs").body.cards if card.id == "steps")
    steps.resources = {"cpu": 2}
    next(card for card in steps.body.cards if card.id == "fwd").resources = {"cpu": 3}
    assert actor_options(*schedule_of(pipeline), [{"CPU": 4}]) == {"num_cpus": 3}
    with pytest.raises(InvalidOption, match=r"^card 'epochs.steps.fwd' asks for 3 of the resource 'cpu', which no "
                                            r"node of the Ray cluster has enough of \(the most one node has: 2\)"):
        actor_options(*schedule_of(pipeline), [{"CPU": 2}, {"CPU": 2}])


def test_resources_that_no_one_node_has_together_are_refused(regression_csv):
    pipeline = loop(regression_csv, batches=1)
    pipeline.card("model").resources = {"cpu": 2, "fake_gpu": 1}
    with pytest.raises(InvalidOption, match=r"^the run's cards ask together for cpu 2, fake_gpu 1 on one node"):
        actor_options(*schedule_of(pipeline), [{"CPU": 2}, {"CPU": 1, "fake_gpu": 1}])


def test_an_actor_killed_mid_card_is_replaced_and_the_run_ends_bit_for_bit(regression_csv, store, tmp_path):
    cards = tmp_path / "killer.py"
    cards.write_text(KILLER.replace("test_kill_once", "test_ray_kill_once"))  # other tests register their copy
    pipeline = repeated_batch(regression_csv, epochs=4)
    marker = tmp_path / "killed"
    pipeline.card("epochs").body.cards.insert(0, pipeline.card("epochs").body.cards[0].__class__(
        id="kill", type="test_ray_kill_once", config={"at": 2, "marker": str(marker),
                                                  "records": str(store / "runs.sqlite")},
        inputs={"iteration": "epochs.iteration"}))
    result = cardloop.run(pipeline, store=store, executor="ray", threads=1, cards=[cards])
    assert marker.exists() and result.status == "succeeded"  # the actor's process was SIGKILLed once
    model, _ = hand_loop(regression_csv, 4, 2)
    assert_same_weights(cardloop.load_output(result.run_id, "epochs", "model", store=store), model)


def test_a_card_whose_actor_dies_on_every_try_fails_naming_the_card(regression_csv, store, resource_cards):
    with pytest.raises(CardFailed) as failed:
        cardloop.run(with_card(loop(regression_csv, batches=1), "test_kill_always"), store=store, executor="ray",
                     threads=1, cards=[resource_cards])
    assert str(failed.value) == ("card 'probe' (test_kill_always) failed: the process of the Ray actor running it "
                                 "died 2 times; run again to resume from the stored outputs")
    records = RunRecords(store / "runs.sqlite")
    assert records.get_run(failed.value.result.run_id).status == "failed"
    assert records.card_execution(failed.value.result.run_id, "step0").status == "done"  # kept in the store


def test_the_cli_runs_on_a_ray_it_starts_itself(regression_csv, store, tmp_path_factory):
    """Without --ray-address the run starts its own Ray (its files in the test's folders, RAY_TMPDIR and HOME)."""
    pipeline = loop(regression_csv, batches=1).save(tmp_path_factory.mktemp("p") / "loop.yaml")
    home, temp = tmp_path_factory.mktemp("h"), tmp_path_factory.mktemp("r")
    done = subprocess.run([sys.executable, "-m", "cardloop.cli", "run", str(pipeline), "--store", str(store),
                           "--executor", "ray", "--threads", "1", "--quiet"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HOME": str(home), "RAY_TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    run = RunRecords(store / "runs.sqlite").list_runs(1)[0]
    assert (run.status, run.executor) == ("succeeded", "ray")
    assert any(temp.iterdir()) and (home / ".ray").exists()  # Ray's files went where the test said


def test_the_cli_refuses_a_ray_address_with_another_executor_in_one_sentence(regression_csv, store, tmp_path):
    pipeline = loop(regression_csv, batches=1).save(tmp_path / "loop.yaml")
    done = subprocess.run([sys.executable, "-m", "cardloop.cli", "run", str(pipeline), "--store", str(store),
                           "--ray-address", "127.0.0.1:6379"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "ray_address is for the ray executor; this run's executor is 'local'" in " ".join(done.stderr.split())


def test_the_cli_refuses_a_ray_address_where_nothing_answers_in_one_sentence(regression_csv, store, tmp_path):
    pipeline = loop(regression_csv, batches=1).save(tmp_path / "loop.yaml")
    with socket.socket() as bound:  # bound but not listening: the port is taken, and refuses connections
        bound.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{bound.getsockname()[1]}"
        done = subprocess.run([sys.executable, "-m", "cardloop.cli", "run", str(pipeline), "--store", str(store),
                               "--executor", "ray", "--ray-address", address], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no Ray cluster answers at '{address}' (--ray-address): Connection refused" in " ".join(
        done.stderr.split())


def test_a_ray_started_on_this_machine_listens_on_loopback_only(ray_cluster):
    """Every server of the Ray that start_local started (GCS, raylet, workers) is bound to 127.0.0.1."""
    import psutil

    ray_pids = {proc.pid for proc in psutil.process_iter(["cmdline"])
                if any(part in " ".join(proc.info["cmdline"] or ()) for part in ("gcs_server", "raylet", "ray::"))}
    listening = [conn.laddr.ip for conn in psutil.net_connections(kind="inet")
                 if conn.status == psutil.CONN_LISTEN and conn.pid in ray_pids]
    assert ray_cluster.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    assert listening and all(ip.removeprefix("::ffff:") == "127.0.0.1" for ip in listening), listening


def test_a_blocks_body_card_events_reach_the_run_while_the_block_runs_on_the_actor(regression_csv, store, tmp_path,
                                                                                  waiting_cards):
    """Epoch 1 waits until the run's progress callback has seen epoch 0's events: it would wait in vain if the events
    came with the block's outcome. They come before the block's own event, in order."""
    signal, events = tmp_path / "seen", []

    def progress(event):
        events.append((event.kind, event.card_id))
        if event.card_id == "epochs[0].wait" and event.kind == "done":
            signal.touch()

    result = cardloop.run(waiting_blocks(regression_csv, signal, tmp_path / "marker"), store=store, executor="ray",
                          threads=1, cards=[waiting_cards], progress=progress)
    assert result.status == "succeeded"
    assert events.index(("done", "epochs[0].wait")) < events.index(("started", "epochs[1].wait")) \
        < events.index(("done", "epochs[2].steps[1].step")) < events.index(("done", "epochs"))


@pytest.mark.parametrize("interruption", ["cancelled", "interrupted"])
def test_a_run_stopped_while_a_card_runs_on_ray_ends_the_actor_and_keeps_what_was_stored(regression_csv, store,
                                                                                         tmp_path, waiting_cards,
                                                                                         interruption):
    """The server cancels a run by raising RunCancelled from its progress callback (Ctrl-C is KeyboardInterrupt):
    raised while epoch 1's first card waits on the actor, the actor's process ends (it would wait on otherwise),
    the run is recorded cancelled and the cards before the block stay stored."""
    import psutil

    from cardloop.server.runs import RunCancelled

    marker, run_ids = tmp_path / "marker", []

    def progress(event):
        run_ids.append(event.run_id)
        if event.card_id == "epochs[1].wait" and event.kind == "started":
            raise RunCancelled("the run was cancelled") if interruption == "cancelled" else KeyboardInterrupt

    with pytest.raises(RunCancelled if interruption == "cancelled" else KeyboardInterrupt):
        cardloop.run(waiting_blocks(regression_csv, tmp_path / "never", marker), store=store, executor="ray",
                     threads=1, cards=[waiting_cards], progress=progress)
    pid = int(marker.read_text().split()[0])  # the actor's process, which ran epoch 0's card
    try:
        psutil.Process(pid).wait(timeout=120)  # psutil.TimeoutExpired if the actor's process goes on
    except psutil.NoSuchProcess:
        pass
    assert not ray_executor._workers or all(w.actor is None for w in ray_executor._workers.values())
    records = RunRecords(store / "runs.sqlite")
    assert records.get_run(run_ids[0]).status == "cancelled"
    assert records.card_execution(run_ids[0], "opt").status == "done"


def test_the_cli_shows_a_blocks_body_cards_while_the_block_runs_on_ray(regression_csv, store, tmp_path,
                                                                      tmp_path_factory, waiting_cards):
    """Interrupted while epoch 1 waits, the CLI names the last body card it saw done: it saw them as they ran."""
    import signal as signals
    import time

    marker = tmp_path / "marker"
    pipeline = waiting_blocks(regression_csv, tmp_path / "never", marker).save(tmp_path / "blocks.yaml")
    home, temp = tmp_path_factory.mktemp("h"), tmp_path_factory.mktemp("r")  # short: Ray's socket paths go in it
    cli = subprocess.Popen([sys.executable, "-m", "cardloop.cli", "run", str(pipeline), "--store", str(store),
                            "--executor", "ray", "--threads", "1", "--cards", str(waiting_cards)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "HOME": str(home), "RAY_TMPDIR": str(temp)})
    for _ in range(30000):  # until epoch 1's card has started on the actor (the second line), or the CLI ended
        if cli.poll() is not None or (marker.exists() and len(marker.read_text().split()) >= 2):
            break
        time.sleep(0.01)
    cli.send_signal(signals.SIGINT)
    _, stderr = cli.communicate(timeout=300)
    assert cli.returncode == 130, stderr
    assert "interrupted after card 'epochs[0]." in " ".join(stderr.split())


@pytest.mark.parametrize("limit, steps", [(1e-6, False), (1e9, True)])
def test_a_step_on_ray_runs_only_when_its_when_holds_inside_the_call(regression_csv, store, limit, steps):
    from tests.engine.test_when import hand_model, one_step, statuses

    result = cardloop.run(one_step(regression_csv, {"value": "loss.loss_value", "below": limit}), store=store,
                          threads=1, executor="ray")
    assert result.status == "succeeded"
    assert statuses(store, result.run_id)["step"] == ("done" if steps else "skipped")
    assert_same_weights(cardloop.load_output(result.run_id, "clone", "model", store=store),
                        hand_model(regression_csv, steps))


def test_cards_on_ray_that_need_what_a_skipped_card_did_not_make_are_skipped_as_on_the_local_executor(
        regression_csv, tmp_path):
    from tests.engine.test_when import one_step

    never = {"value": "model.model", "equals": "a model is never this text"}
    found = {}
    for executor in ("ray", "local"):
        result = cardloop.run(one_step(regression_csv, when_opt=never), store=tmp_path / executor, threads=1,
                              executor=executor)
        found[executor] = [(row.card_id, row.status, row.error) for row in
                           RunRecords(tmp_path / executor / "runs.sqlite").execution_rows(result.run_id)]
    skipped_zero = ("zero", "skipped", "its input 'optimizer' comes from a card that was skipped")
    assert found["ray"] == found["local"] and skipped_zero in found["ray"]


def test_a_run_failing_on_ray_keeps_the_state_the_last_finished_card_left_as_the_local_executor_does(
        regression_csv, tmp_path):
    snapshots = {}
    for executor in ("ray", "local"):
        with pytest.raises(CardFailed) as failed:  # 100 rows in batches of 16 make 7 batches: batch7 fails
            cardloop.run(loop(regression_csv, batches=8), store=tmp_path / executor, executor=executor, threads=1)
        snapshots[executor] = [(s.card_id, s.group, s.version) for s in RunRecords(
            tmp_path / executor / "runs.sqlite").state_snapshots(failed.value.result.run_id)]
    assert snapshots["ray"] == snapshots["local"] and snapshots["ray"][-1][0] == "step6"  # the last one finished
