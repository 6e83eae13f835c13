"""Sweeps on Ray (cardloop.sweeps, executor="ray"): on the session's local Ray (tests/conftest.py), the variants run
two at a time, each run's cards on a state actor of its own, with the same results, bit for bit, as the same sweep
run locally; the data cards run once; early stopping and schedulers work as locally."""

from __future__ import annotations

import pandas as pd
import pytest

import cardloop
from cardloop.errors import CardloopError
from cardloop.example_schedulers import warmup_cosine
from cardloop.store.records import RunRecords
from tests.oracle import assert_same_weights
from tests.test_sweeps import tiny

SETTINGS = {"opt.learning_rate": [0.001, 0.01, 0.05]}
DATA_CARDS = ("data", "split", "normalize")


pytestmark = pytest.mark.usefixtures("ray_without_actors")


@pytest.fixture(scope="module")
def swept(tmp_path_factory, ray_cluster):
    """The same sweep of three learning rates, locally (one after the other) and on Ray (two at a time)."""
    folder = tmp_path_factory.mktemp("sweeps")
    local = cardloop.sweep(tiny(), set=SETTINGS, store=folder / "local", threads=1)
    on_ray = cardloop.sweep(tiny(), set=SETTINGS, store=folder / "ray", threads=1, executor="ray", parallel=2)
    return local, on_ray


def without_run_ids(result):
    return result.table().drop(columns=["run_id"])


def test_a_sweep_on_ray_prints_the_same_results_table_as_the_same_sweep_run_locally(swept):
    local, on_ray = swept
    assert list(on_ray.table()["status"]) == ["succeeded"] * 3
    pd.testing.assert_frame_equal(without_run_ids(on_ray), without_run_ids(local))


def test_each_variant_of_a_sweep_on_ray_trains_bit_for_bit_the_weights_of_the_local_sweep(swept):
    local, on_ray = swept
    for here, there in zip(local.outcomes, on_ray.outcomes):
        assert_same_weights(cardloop.load_output(there.run_id, "epochs", "model", store=on_ray.store_root),
                            cardloop.load_output(here.run_id, "epochs", "model", store=local.store_root))


def test_the_data_cards_of_a_sweep_on_ray_run_once_and_every_variant_takes_them_from_the_cache(swept):
    _, on_ray = swept
    with RunRecords(on_ray.store_root / "runs.sqlite") as records:
        runs = records.list_runs()
        assert len(runs) == 4  # the shared cards' run and the three variants
        assert {run.executor for run in runs} == {"ray"}
        rows = {run.run_id: {row.card_id: row.status for row in records.execution_rows(run.run_id)} for run in runs}
    assert [rows[on_ray.shared_run_id][card] for card in DATA_CARDS] == ["done"] * 3
    for outcome in on_ray.outcomes:
        assert [rows[outcome.run_id][card] for card in DATA_CARDS] == ["cached"] * 3


def test_a_sweep_on_ray_is_recorded_with_its_executor(swept):
    _, on_ray = swept
    with RunRecords(on_ray.store_root / "runs.sqlite") as records:
        found = records.get_sweep(on_ray.sweep_id)
    assert (found.status, found.options["executor"], found.options["parallel"]) == ("succeeded", "ray", 2)


def test_a_sweep_on_ray_leaves_no_actor_holding_a_cpu_of_the_cluster(tmp_path, ray_cluster):
    @ray_cluster.remote(num_cpus=2)
    def every_cpu():
        return "placed"

    cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, store=tmp_path, threads=1, executor="ray")
    # an actor left behind would hold one of the 2 CPUs for good, and this task would never be placed (with
    # parallel=2 the sweep itself would wait for ever: its second variant's actor would find no CPU)
    assert ray_cluster.get(every_cpu.remote(), timeout=120) == "placed"


def test_a_variant_on_ray_stopped_by_early_stopping_ends_early_while_the_other_trains_on(tmp_path):
    result = cardloop.sweep(tiny(epochs=4, patience=1), set={"opt.learning_rate": [0.001, 0.05]}, store=tmp_path,
                            threads=1, executor="ray", parallel=2)
    table = result.table()
    assert list(table["epochs.iterations"]) == [4, 3]  # the second stopped on its own after epoch 2
    assert list(table["best_epoch"]) == [3, 1]


def test_a_sweep_on_ray_over_a_schedulers_setting_ends_as_the_same_sweep_run_locally(tmp_path):
    pipeline = warmup_cosine(warmup_steps=2, T_max=4, epochs=1, batch_size=64, layers=(8,))
    settings = {"schedule.warmup_steps": [1, 3]}
    local = cardloop.sweep(pipeline, set=settings, store=tmp_path / "local", threads=1)
    on_ray = cardloop.sweep(pipeline, set=settings, store=tmp_path / "ray", threads=1, executor="ray", parallel=2)
    pd.testing.assert_frame_equal(without_run_ids(on_ray), without_run_ids(local))


def test_a_ray_address_for_a_sweep_on_another_executor_is_refused(tmp_path):
    with pytest.raises(CardloopError, match="ray_address is for the ray executor; this sweep's executor is 'local'"):
        cardloop.sweep(tiny(), set=SETTINGS, store=tmp_path, ray_address="127.0.0.1:6379")
