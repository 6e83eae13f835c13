"""The API on loop blocks: a card by its path (a card id, a body card over every iteration, one iteration,
URL-encoded) and a metric's points with every body card's per-iteration values, from runs the server started."""

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from cardloop.server.app import create_app
from tests.blocks import hand_written_losses, nested_pipeline, steps_pipeline
from tests.server import TESTCLIENT_HOSTS
from tests.server.test_runs import start, wait


@pytest.fixture
def client(store, tmp_path):
    return TestClient(create_app(store, tmp_path / "pipelines", tmp_path, None, TESTCLIENT_HOSTS))


def finished(client, pipeline):
    run_id = start(client, {"pipeline": pipeline.to_dict()})
    detail = wait(client, run_id)
    assert detail["status"] == "succeeded", detail["error"]
    return run_id


def get_card(client, run_id, path):
    return client.get(f"/api/runs/{run_id}/cards/{quote(path, safe='')}")


def strict(response):
    """The body as a browser's JSON.parse reads it: bare NaN or Infinity would be refused."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(response.text, parse_constant=refuse)


def test_one_iteration_by_its_url_encoded_path_gives_its_status_seconds_and_loss(client, regression_csv):
    run_id = finished(client, steps_pipeline(regression_csv, times=5))
    response = get_card(client, run_id, "steps[3].loss")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["kind"], body["path"], body["static_path"], body["indices"]) == ("iteration", "steps[3].loss",
                                                                                  "steps.loss", [3])
    assert body["status"] == "done" and body["seconds"] > 0 and body["outputs"] is None
    assert body["metrics"]["loss_value"] == hand_written_losses(regression_csv, 5)[3]


def test_a_static_path_gives_the_card_over_every_iteration(client, regression_csv):
    run_id = finished(client, nested_pipeline(regression_csv, when={"every": 2, "of": "batches"}))
    body = get_card(client, run_id, "epochs.batches.step").json()
    assert (body["kind"], body["executions"], body["done"], body["skipped"]) == ("body_card", 6, 2, 4)
    loss = get_card(client, run_id, "epochs.batches.loss").json()["metrics"]["loss_value"]
    assert loss["count"] == 6 and loss["min"] <= loss["first"]


def test_a_top_level_block_by_its_id_gives_its_execution_outputs_and_summary(client, regression_csv):
    run_id = finished(client, nested_pipeline(regression_csv))
    body = get_card(client, run_id, "epochs").json()
    assert (body["kind"], body["card_type"], body["status"]) == ("card", "loop", "done")
    assert set(body["outputs"]) == {"model", "optimizer", "score"}
    assert body["block"]["loops"] == [{"loop": "epochs", "iterations": 2}, {"loop": "epochs.batches", "iterations": 6}]


@pytest.mark.parametrize(("path", "status", "said"), [
    ("epochs[1].batches[9].loss", 404, "loop 'epochs.batches' ran 3 iteration(s) in epochs[1] (0 to 2)"),
    ("epochs.batches.nope", 404, "has no body card 'epochs.batches.nope' in block 'epochs'"),
    ("nope", 404, "has no card 'nope'"),
    ("epochs[1]", 400, "ends with an iteration ('epochs[1]'), not a card"),
])
def test_a_path_the_run_lacks_or_malformed_is_a_sentence(client, regression_csv, path, status, said):
    run_id = finished(client, nested_pipeline(regression_csv))
    response = get_card(client, run_id, path)
    assert response.status_code == status and said in response.json()["detail"]


def test_metrics_points_span_every_iteration_in_the_order_the_cards_ran(client, regression_csv):
    run_id = finished(client, nested_pipeline(regression_csv))
    body = client.get(f"/api/runs/{run_id}/metrics").json()
    hand = hand_written_losses(regression_csv, 7)
    assert [p["value"] for p in body["points"]] == [*hand[0:3], hand[3], *hand[3:6], hand[6]]
    assert [p["card_id"] for p in body["points"]][:4] == ["epochs[0].batches[0].loss", "epochs[0].batches[1].loss",
                                                           "epochs[0].batches[2].loss", "epochs[0].score"]
    assert [p["step"] for p in body["points"]] == list(range(8))
    series = {s["path"]: s for s in body["iterations"]}
    assert series["epochs.batches.loss"]["loops"] == ["epochs", "epochs.batches"]
    assert series["epochs.batches.loss"]["indices"] == [[e, b] for e in range(2) for b in range(3)]
    assert series["epochs.score"]["values"] == [hand[3], hand[6]]


def test_metrics_of_a_diverging_block_are_sent_as_json_a_browser_parses(client, regression_csv):
    run_id = finished(client, steps_pipeline(regression_csv, times=4, learning_rate=1e30))
    body = strict(client.get(f"/api/runs/{run_id}/metrics"))
    values = body["iterations"][0]["values"]
    assert len(values) == 4 and any(v in ("NaN", "Infinity") for v in values)
    assert [p["value"] for p in body["points"]] == values
    one = strict(get_card(client, run_id, "steps[3].loss"))
    assert one["metrics"]["loss_value"] in ("NaN", "Infinity")
    assert strict(get_card(client, run_id, "steps.loss"))["metrics"]["loss_value"]["min"] is not None


def test_metrics_points_put_a_blocks_values_between_the_cards_before_and_after_it(client, regression_csv):
    from tests.blocks import around_pipeline

    run_id = finished(client, around_pipeline(regression_csv, times=3))
    points = client.get(f"/api/runs/{run_id}/metrics").json()["points"]
    assert [p["card_id"] for p in points] == ["loss_before", "steps[0].loss", "steps[1].loss", "steps[2].loss",
                                              "loss_after"]
    hand = hand_written_losses(regression_csv, 4)
    assert [p["value"] for p in points] == [hand[0], *hand[:3], hand[3]]
