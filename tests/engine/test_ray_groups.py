"""Independent training-state groups on Ray (engine/ray_groups.py): which cards go to which stage, and two models
trained on the same data, each on an actor of its own at the same time, bit for bit the local executor's."""

from __future__ import annotations

import os
import time

import pytest

import cardloop
from cardloop import CardFailed
from cardloop.cards.registry import load_card_file
from cardloop.engine.plan import plan_pipeline
from cardloop.engine.ray_executor import room_for_two
from cardloop.engine.ray_groups import stages
from cardloop.store.records import RunRecords
from cardloop.examples import add_training_step, basic_training_loop
from tests.oracle import assert_same_weights

BATCHES = 2

GROUP_CARDS = '''
import os
import signal
import time
from pathlib import Path

import ray

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import INFO, MODEL


class MarkerConfig(CardConfig):
    marker: str
    always: bool = False


@card("test_group_kill_once", title="Group kill once", category="evaluation", inputs=[Port("model", MODEL)],
      outputs=[Port("where", INFO)], config=MarkerConfig)
def group_kill_once(config, model):
    """SIGKILL the process it runs in the first time (when its marker is missing; `always`: every time)."""
    if config.always or not Path(config.marker).exists():
        Path(config.marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"where": {"pid": os.getpid()}}


class MeetConfig(CardConfig):
    folder: str
    name: str
    partner: str


@card("test_group_meet", title="Group meet", category="evaluation", inputs=[Port("model", MODEL)],
      outputs=[Port("where", INFO)], config=MeetConfig)
def group_meet(config, model):
    """Leave a marker and wait (up to 5 minutes) for the partner's, so that it finishes only if both run at the
    same time; say which actor it ran on."""
    Path(config.folder, config.name).touch()
    for _ in range(30000):
        if Path(config.folder, config.partner).exists():
            break
        time.sleep(0.01)
    else:
        raise CardError(f"card {config.name} never saw {config.partner} start")
    return {"where": {"actor": ray.get_runtime_context().get_actor_id()}}


class CountConfig(CardConfig):
    path: str


@card("test_group_count", title="Group count", category="evaluation", inputs=[Port("model", MODEL)],
      outputs=[Port("note", INFO)], config=CountConfig)
def group_count(config, model):
    """Add a line to a file each time it runs."""
    with open(config.path, "a") as handle:
        handle.write("ran\\n")
    return {"note": {"weight": float(next(model.parameters()).detach().sum())}}


@card("test_group_pair", title="Group pair", category="evaluation",
      inputs=[Port("model", MODEL), Port("other", MODEL), Port("note", INFO)], outputs=[Port("where", INFO)],
      config=CountConfig)
def group_pair(config, model, other, note):
    """Read two models and a value (a card joining two state groups); leave a marker."""
    Path(config.path).touch()
    return {"where": {"note": note, "other": float(next(other.parameters()).detach().sum())}}
'''


@pytest.fixture(scope="module")
def group_cards(tmp_path_factory):
    """The card file of these tests, written and loaded once (a card type is registered once per process)."""
    path = tmp_path_factory.mktemp("cards") / "group_cards.py"
    path.write_text(GROUP_CARDS)
    load_card_file(str(path))
    return path


def two_models(csv, folder=None):
    """The guide's loop on the split, standardized data, and a second model trained alone on the same batches;
    with `folder`, each model's branch ends with a card that meets the other's."""
    pipeline = basic_training_loop(path=str(csv), input_dim=4, layers=(8,), batches=BATCHES, batch_size=16,
                                   optimizer_type="sgd", learning_rate=0.05, evaluate=False)
    train = pipeline.card("normalize")["train_dataset"]
    model = pipeline.add("model_define", "model_b", input_dim=4, layers=[8], seed=1)["model"]
    optimizer = pipeline.add("training_init_optimizer", "opt_b", model=model, optimizer_type="sgd",
                             learning_rate=0.05)["optimizer"]
    for i in range(BATCHES):
        model, optimizer, _ = add_training_step(pipeline, 100 + i, train, model, optimizer, batch_size=16,
                                                batch_index=i)
    if folder is not None:
        for name, partner, last in (("meet_a", "meet_b", f"step{BATCHES - 1}"), ("meet_b", "meet_a", last_b())):
            pipeline.add("test_group_meet", name, model=pipeline.card(last)["model"], folder=str(folder),
                         name=name, partner=partner)
    return pipeline


def last_b():
    return f"step{100 + BATCHES - 1}"


def stage_ids(pipeline):
    found = stages(list(plan_pipeline(pipeline).cards))
    return found and ([pc.id for pc in found.prelude],
                      {group: [pc.id for pc in cards] for group, cards in found.segments.items()},
                      [pc.id for pc in found.join])


def test_two_models_trained_on_the_same_data_make_two_segments_after_the_data_cards(regression_csv):
    prelude, segments, join = stage_ids(two_models(regression_csv))
    assert prelude == ["data", "split", "normalize"] and join == []
    assert list(segments) == ["model.model", "model_b.model"]
    assert segments["model_b.model"][:3] == ["model_b", "opt_b", "batch100"]
    assert all(not card.startswith(("model_b", "opt_b")) and not card.endswith(("100", "101"))
               for card in segments["model.model"])


def test_a_run_with_one_state_group_is_not_cut(regression_csv):
    assert stage_ids(basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), batches=BATCHES)) is None


def joined(csv, count_file):
    """Two models, a count of model B's weights at the end of its segment, and a card reading both models and the
    count."""
    pipeline = two_models(csv)
    count = pipeline.add("test_group_count", "count", model=pipeline.card(last_b())["model"], path=str(count_file))
    pipeline.add("test_group_pair", "pair", model=pipeline.card(f"step{BATCHES - 1}")["model"],
                 other=pipeline.card(last_b())["model"], note=count["note"], path=str(count_file) + ".pair")
    return pipeline


def test_a_card_reading_two_groups_runs_after_both_segments(regression_csv, group_cards, tmp_path):
    prelude, segments, join = stage_ids(joined(regression_csv, tmp_path / "count"))
    assert segments["model_b.model"][-1] == "count" and join == ["pair"]


def test_segments_run_on_actors_of_their_own_only_where_the_cluster_has_cpus_for_two_at_once():
    """Else the second segment's actor would wait for ever for the CPU the warm first actor holds."""
    one, two = {"num_cpus": 1}, {"num_cpus": 2}
    assert room_for_two(one, [one], [{"CPU": 1}, {"CPU": 1}]) and room_for_two(one, [one, one], [{"CPU": 2}])
    assert not room_for_two(one, [one], [{"CPU": 1}]) and not room_for_two(one, [one, two], [{"CPU": 2}])


def test_a_card_joining_two_groups_on_ray_reads_what_both_segments_made_each_card_running_once(
        ray_without_actors, regression_csv, tmp_path, group_cards):
    """The run's thread holds back the events from the count's start on until the join's card has run (its
    marker): the join's call must still know that the count's output is stored, and not run it again."""
    pipeline = joined(regression_csv, tmp_path / "count")

    def hold(event):
        if event.card_id == "count" and event.kind == "started":
            for _ in range(30000):
                if (tmp_path / "count.pair").exists():
                    break
                time.sleep(0.01)

    on_ray = cardloop.run(pipeline, store=tmp_path / "ray", executor="ray", threads=1, cards=[group_cards],
                          keep_outputs=True, progress=hold)
    assert (tmp_path / "count").read_text() == "ran\n"
    local = cardloop.run(pipeline, store=tmp_path / "local", executor="local", threads=1, cards=[group_cards],
                         keep_outputs=True)
    assert on_ray.executed == local.executed
    assert on_ray.outputs["pair"]["where"] == local.outputs["pair"]["where"]


def test_two_models_on_ray_train_the_local_executors_weights_on_two_actors_at_the_same_time(
        ray_without_actors, regression_csv, tmp_path, group_cards):
    """Each branch's last card finishes only once the other's has started (markers, not timing); the local run
    after it finds both markers there."""
    pipeline = two_models(regression_csv, folder=tmp_path)
    on_ray = cardloop.run(pipeline, store=tmp_path / "ray", executor="ray", threads=1, cards=[group_cards],
                          keep_outputs=True)
    local = cardloop.run(pipeline, store=tmp_path / "local", executor="local", threads=1, cards=[group_cards])
    assert on_ray.status == "succeeded" and on_ray.executed == [c.id for c in pipeline.cards] == local.executed
    actors = {on_ray.outputs[name]["where"]["actor"] for name in ("meet_a", "meet_b")}
    assert len(actors) == 2 and None not in actors
    for last in (f"step{BATCHES - 1}", last_b()):
        assert_same_weights(cardloop.load_output(on_ray.run_id, last, "model", store=tmp_path / "ray"),
                            cardloop.load_output(local.run_id, last, "model", store=tmp_path / "local"))


def records_of(result, store):
    """Per card: its status and metrics; and the snapshots of the training state."""
    records = RunRecords(store / "runs.sqlite")
    return ([(e.card_id, e.status) for e in records.card_executions(result.run_id)],
            [(m.card_id, m.name, m.step, m.value) for m in records.metrics(result.run_id)],
            [(s.card_id, s.group, s.version) for s in records.state_snapshots(result.run_id)])


def test_two_models_on_ray_record_what_the_local_executor_records(ray_without_actors, regression_csv, tmp_path):
    """The same cards, statuses, metrics and snapshots (the final state of both groups), in the same order."""
    pipeline = two_models(regression_csv)
    recorded = {executor: records_of(cardloop.run(pipeline, store=tmp_path / executor, executor=executor, threads=1),
                                     tmp_path / executor) for executor in ("ray", "local")}
    assert recorded["ray"] == recorded["local"]
    assert {group for _, group, _ in recorded["ray"][2]} == {"model.model", "model_b.model"}


def test_an_actor_of_one_segment_killed_mid_card_is_replaced_and_both_models_end_bit_for_bit(
        ray_without_actors, regression_csv, tmp_path, group_cards):
    pipeline = two_models(regression_csv)
    marker = tmp_path / "killed"
    pipeline.cards.insert(len(pipeline.cards) - 5, pipeline.cards[0].__class__(
        id="kill", type="test_group_kill_once", config={"marker": str(marker)}, inputs={"model": "step100.model"}))
    on_ray = cardloop.run(pipeline, store=tmp_path / "ray", executor="ray", threads=1, cards=[group_cards],
                          keep_outputs=True)
    assert marker.exists() and on_ray.status == "succeeded" and on_ray.outputs["kill"]["where"]["pid"] != os.getpid()
    local = cardloop.run(pipeline, store=tmp_path / "local", executor="local", threads=1, cards=[group_cards])
    for last in (f"step{BATCHES - 1}", last_b()):
        assert_same_weights(cardloop.load_output(on_ray.run_id, last, "model", store=tmp_path / "ray"),
                            cardloop.load_output(local.run_id, last, "model", store=tmp_path / "local"))


def test_a_card_failing_in_one_segment_fails_the_run_naming_it(ray_without_actors, regression_csv, tmp_path,
                                                              group_cards):
    pipeline = two_models(regression_csv)
    pipeline.add("test_group_kill_once", "kill", model=pipeline.card(last_b())["model"],
                 marker=str(tmp_path / "killed"), always=True)
    with pytest.raises(CardFailed, match="died 2 times") as failed:
        cardloop.run(pipeline, store=tmp_path / "ray", executor="ray", threads=1, cards=[group_cards])
    assert (failed.value.card_id, failed.value.card_type) == ("kill", "test_group_kill_once")
    records = RunRecords(tmp_path / "ray" / "runs.sqlite")
    assert records.get_run(failed.value.result.run_id).status == "failed"
    assert records.card_execution(failed.value.result.run_id, f"step{BATCHES - 1}").status == "done"
