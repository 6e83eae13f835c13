"""Data cards as Ray tasks (engine/ray_tasks.py): which cards, in which waves; on the session's local Ray
(tests/conftest.py), independent ones launched together and the run bit for bit the local executor's."""

from __future__ import annotations

import os

import pytest

import cardloop
from cardloop import CardFailed
from cardloop.engine.plan import plan_pipeline
from cardloop.engine.ray_tasks import task_waves
from cardloop.engine.resolve import Schedule
from cardloop.examples import basic_training_loop
from tests.oracle import assert_same_weights

BATCHES = 2

PROBE_CARDS = '''
import os
import signal
import time
from pathlib import Path

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import DATAFRAME, INFO


class ProbeConfig(CardConfig):
    folder: str
    name: str
    partner: str = ""
    always: bool = False


@card("test_task_probe", title="Task probe", category="data", inputs=[Port("dataset", DATAFRAME)],
      outputs=[Port("where", INFO)], config=ProbeConfig)
def task_probe(config, dataset):
    """Say where it runs; with a partner, leave a marker and wait (up to 5 minutes) for the partner's, so that it
    finishes only if both run at the same time."""
    import ray

    Path(config.folder, config.name).touch()
    if config.partner:
        for _ in range(30000):
            if Path(config.folder, config.partner).exists():
                break
            time.sleep(0.01)
        else:
            raise CardError(f"card {config.name} never saw {config.partner} start")
    context = ray.get_runtime_context()
    return {"where": {"actor": context.get_actor_id(), "task": context.get_task_id(), "pid": os.getpid()}}


@card("test_task_killed_once", title="Killed once", category="data", inputs=[Port("dataset", DATAFRAME)],
      outputs=[Port("where", INFO)], config=ProbeConfig)
def killed_once(config, dataset):
    """SIGKILL the process it runs in the first time (when its marker is missing; `always`: every time), then run."""
    marker = Path(config.folder, config.name)
    if config.always or not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"where": {"pid": os.getpid()}}
'''


@pytest.fixture(scope="module")
def probe_cards(tmp_path_factory):
    """The card file of these tests, written once (a card type is registered once per process)."""
    path = tmp_path_factory.mktemp("cards") / "probe_cards.py"
    path.write_text(PROBE_CARDS)
    return path


def guide(csv, holdout=None):
    """The guide's Basic Training Loop (load, split, normalize, then the steps); with `holdout`, a second data
    branch: that file loaded and the trained model evaluated on it."""
    pipeline = basic_training_loop(path=str(csv), input_dim=4, layers=(8,), batches=BATCHES, batch_size=16,
                                   optimizer_type="sgd", learning_rate=0.05)
    if holdout is not None:
        data = pipeline.add("data_load", "holdout", path=str(holdout))
        pipeline.add("evaluate", "evaluate_holdout", model=pipeline.card(f"step{BATCHES - 1}")["model"],
                     dataset=data["dataset"])
    return pipeline


def waves(pipeline):
    plan = plan_pipeline(pipeline)
    return [[pc.id for pc in wave] for wave in task_waves(Schedule(list(plan.cards), []))]


def test_two_independent_data_branches_run_as_tasks_in_waves_and_nothing_of_the_training(regression_csv):
    assert waves(guide(regression_csv, holdout=regression_csv)) == [["data", "holdout"], ["split"], ["normalize"]]


def test_a_single_chain_of_data_cards_runs_on_the_state_actor(regression_csv):
    """Nothing would run in parallel, and tasks would write to the store what the actor keeps live."""
    assert waves(guide(regression_csv)) == []


def test_the_guides_pipeline_with_two_data_branches_on_ray_trains_the_local_executors_weights(
        ray_without_actors, regression_csv, tmp_path):
    pipeline = guide(regression_csv, holdout=regression_csv)
    on_ray = cardloop.run(pipeline, store=tmp_path / "ray", executor="ray", threads=1)
    local = cardloop.run(pipeline, store=tmp_path / "local", executor="local", threads=1)
    assert on_ray.status == "succeeded" and on_ray.executed == [c.id for c in pipeline.cards]
    last = f"step{BATCHES - 1}"
    assert_same_weights(cardloop.load_output(on_ray.run_id, last, "model", store=tmp_path / "ray"),
                        cardloop.load_output(local.run_id, last, "model", store=tmp_path / "local"))
    assert on_ray.metrics() == local.metrics()


def test_two_independent_data_cards_run_as_ray_tasks_at_the_same_time(ray_without_actors, regression_csv, store, tmp_path,
                                                                     probe_cards):
    """Each probe finishes only once the other has started (markers, not timing), and runs in a task."""
    pipeline = guide(regression_csv)
    dataset = pipeline.card("data")["dataset"]
    for name, partner in (("probe_a", "probe_b"), ("probe_b", "probe_a")):
        pipeline.add("test_task_probe", name, dataset=dataset, folder=str(tmp_path), name=name, partner=partner)
    result = cardloop.run(pipeline, store=store, executor="ray", threads=1, cards=[probe_cards], keep_outputs=True)
    where = [result.outputs[name]["where"] for name in ("probe_a", "probe_b")]
    assert all(w["actor"] is None and w["task"] and w["pid"] != os.getpid() for w in where)


def test_a_data_card_failing_in_its_task_fails_the_run_naming_it(ray_without_actors, regression_csv, store, tmp_path):
    pipeline = guide(regression_csv, holdout=tmp_path / "missing.csv")
    with pytest.raises(CardFailed) as failed:
        cardloop.run(pipeline, store=store, executor="ray", threads=1)
    assert (failed.value.card_id, failed.value.card_type) == ("holdout", "data_load")
    assert failed.value.result.status == "failed"


def test_a_data_card_whose_task_process_dies_is_retried_once(ray_without_actors, regression_csv, store, tmp_path, probe_cards):
    pipeline = guide(regression_csv)
    dataset = pipeline.card("data")["dataset"]
    pipeline.add("test_task_killed_once", "killed", dataset=dataset, folder=str(tmp_path), name="killed")
    pipeline.add("test_task_probe", "probe", dataset=dataset, folder=str(tmp_path), name="probe")
    result = cardloop.run(pipeline, store=store, executor="ray", threads=1, cards=[probe_cards], keep_outputs=True)
    assert result.status == "succeeded" and (tmp_path / "killed").exists()
    assert result.outputs["killed"]["where"]["pid"] != os.getpid()


def test_a_data_card_whose_task_process_dies_on_every_try_fails_naming_it(ray_without_actors, regression_csv, store, tmp_path,
                                                                          probe_cards):
    pipeline = guide(regression_csv)
    dataset = pipeline.card("data")["dataset"]
    pipeline.add("test_task_killed_once", "killed", dataset=dataset, folder=str(tmp_path), name="killed", always=True)
    pipeline.add("test_task_probe", "probe", dataset=dataset, folder=str(tmp_path), name="probe")
    with pytest.raises(CardFailed, match="the process of the Ray task running it died 2 times") as failed:
        cardloop.run(pipeline, store=store, executor="ray", threads=1, cards=[probe_cards])
    assert (failed.value.card_id, failed.value.card_type) == ("killed", "test_task_killed_once")
