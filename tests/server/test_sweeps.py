"""The sweeps API (server/sweeps.py): GET /api/sweeps and /api/sweeps/{id} over a real sweep in a real store,
through FastAPI's test client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import cardloop
from cardloop.server.app import create_app
from cardloop.store.iterations import metric_values_by_block
from cardloop.store.records import RunRecords
from tests.server import TESTCLIENT_HOSTS
from tests.test_sweeps import tiny


@pytest.fixture
def client(store, tmp_path):
    return TestClient(create_app(store, tmp_path / "pipelines", tmp_path, None, TESTCLIENT_HOSTS))


@pytest.fixture
def swept(store):
    return cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, store=store, threads=1)


def test_the_sweeps_of_a_store_without_runs_are_none(client):
    assert client.get("/api/sweeps").json() == []


def test_the_sweeps_list_names_each_sweep_its_settings_and_how_its_variants_ended(client, swept):
    (found,) = client.get("/api/sweeps").json()
    assert (found["sweep_id"], found["name"], found["status"]) == (swept.sweep_id, "basic-training-loop",
                                                                   "succeeded")
    assert (found["settings"], found["variants"], found["succeeded"]) == ({"opt.learning_rate": [0.001, 0.01]}, 2, 2)


def test_a_sweep_gives_each_variants_loss_curve_as_its_run_recorded_it(client, swept, store):
    found = client.get(f"/api/sweeps/{swept.sweep_id}").json()
    assert [v["settings"] for v in found["variants"]] == [{"opt.learning_rate": 0.001}, {"opt.learning_rate": 0.01}]
    runs = [o.run_id for o in swept.outcomes]
    assert [v["run_id"] for v in found["variants"]] == runs
    with RunRecords(store / "runs.sqlite") as records:
        for variant, run_id in zip(found["variants"], runs):
            expected = metric_values_by_block(records, run_id, "loss_value", records.get_run(run_id).pipeline)["epochs"]
            assert variant["curve"] == expected and len(expected) == 6  # 353 rows in batches of 64
            assert records.get_run(run_id).status == "succeeded"
    assert found["variants"][0]["curve"] != found["variants"][1]["curve"]


def test_a_sweep_gives_its_results_table_one_row_per_variant(client, swept):
    found = client.get(f"/api/sweeps/{swept.sweep_id}?metric=mse").json()
    assert found["metric"] == "mse"
    assert [row["opt.learning_rate"] for row in found["results"]] == [0.001, 0.01]
    assert [row["evaluate.mse"] for row in found["results"]] == list(swept.table()["evaluate.mse"])
    assert [len(v["curve"]) for v in found["variants"]] == [2, 2]  # validation after the epoch, evaluate at the end


def test_an_unknown_sweep_is_404_with_a_sentence(client, swept):
    response = client.get("/api/sweeps/sweep-nope")
    assert response.status_code == 404
    assert "no sweep has the id or id prefix 'sweep-nope'" in response.json()["detail"]
