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


@pytest.fixture(autouse=True)
def _ray(ray_cluster):
    """Every test here runs on the session's Ray, without warm actors, and leaves none behind."""
    ray_executor.stop_workers()
    yield ray_cluster
    ray_executor.stop_workers()


@pytest.fixture(scope="module")
def resource_cards(tmp_path_factory):
    """The card file of the resource tests, written once (a card type is registered once per process)."""
    path = tmp_path_factory.mktemp("cards") / "resource_cards.py"
    path.write_text(RESOURCE_CARDS)
    return path


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
    assert second.cached == [c.id for c in loop(regression_csv, batches=1).cards] != first.cached


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


def test_a_custom_resource_no_node_has_is_refused_naming_the_card(regression_csv, store, resource_cards):
    with pytest.raises(InvalidOption, match="card 'probe' asks for 1 of the resource 'tpu', which no node"):
        cardloop.run(with_card(loop(regression_csv, batches=1), "test_needs_a_tpu"), store=store, executor="ray",
                     threads=1, cards=[resource_cards])


def test_gpu_is_asked_for_only_where_the_cluster_has_gpus(regression_csv):
    from cardloop.engine.plan import plan_pipeline
    from cardloop.engine.resolve import Schedule

    plan = plan_pipeline(loop(regression_csv, batches=1))  # model_define declares {"gpu": 1}
    work = Schedule(run=list(plan.cards), skipped=[], value_loads={}, state_loads={})
    assert actor_options(plan, work, {"CPU": 2}) == {"num_cpus": 1}
    assert actor_options(plan, work, {"CPU": 2, "GPU": 1}) == {"num_cpus": 1, "num_gpus": 1}


def test_an_actor_killed_mid_card_is_replaced_and_the_run_ends_bit_for_bit(regression_csv, store, tmp_path):
    cards = tmp_path / "killer.py"
    cards.write_text(KILLER)
    pipeline = repeated_batch(regression_csv, epochs=4)
    marker = tmp_path / "killed"
    pipeline.card("epochs").body.cards.insert(0, pipeline.card("epochs").body.cards[0].__class__(
        id="kill", type="test_kill_once", config={"at": 2, "marker": str(marker),
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
