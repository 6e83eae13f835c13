"""Runs through the HTTP API: starting them (a pipeline or a saved name, partial runs, bad requests), listing,
their cards, cancelling, metrics, output previews, and the live WebSocket of run events.

Every run is the guide's loop over one or two small batches of `regression_csv`, which lies in tmp_path: the
server's data root. A test that needs a run to be caught mid-way holds it with `gate` instead of racing it.
"""

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

import cardloop.server.runs as server_runs
from cardloop.examples import basic_training_loop
from cardloop.server.app import create_app
from tests.server import TESTCLIENT_HOSTS


@pytest.fixture
def client(store, tmp_path):
    return TestClient(create_app(store, tmp_path / "pipelines", tmp_path, None, TESTCLIENT_HOSTS))


def loop(csv, batches=2, **options):
    return basic_training_loop(path=str(csv), input_dim=4, prepare=False, batches=batches, batch_size=16,
                               layers=(8,), **options).to_dict()


def card_ids(batches=2):
    steps = [f"{card}{i}" for i in range(batches) for card in ("batch", "zero", "fwd", "loss", "back", "step")]
    return ["data", "model", "opt", *steps]


def start(client, body):
    """The id of a run just started: on a busy machine a short run may be over by the time the POST answers."""
    response = client.post("/api/runs", json={"threads": 1, **body})
    assert response.status_code == 201, response.text
    assert response.json()["status"] in ("running", "succeeded", "failed", "cancelled"), response.text
    return response.json()["run_id"]


def wait(client, run_id, timeout=120.0):
    """The run's detail once it is no longer running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = client.get(f"/api/runs/{run_id}").json()
        if detail["status"] != "running":
            return detail
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still running after {timeout}s")


def finished_run(client, csv, **options):
    run_id = start(client, {"pipeline": loop(csv), **options})
    detail = wait(client, run_id)
    assert detail["status"] == "succeeded", detail["error"]
    return run_id


@pytest.fixture
def gate(monkeypatch):
    """Holds a run after card `gate.after` is done until the test calls `gate.open()` (a run's progress
    callback runs in its thread, so blocking the event publication blocks the run between two cards)."""

    class Gate:
        after = "step0"
        held = threading.Event()
        released = threading.Event()

        def open(self):
            self.released.set()

    found = Gate()
    original = server_runs._event_json

    def held(event):
        if event.kind == "done" and event.card_id == found.after and not found.released.is_set():
            found.held.set()
            found.released.wait(60)
        return original(event)

    monkeypatch.setattr(server_runs, "_event_json", held)
    yield found
    found.open()  # never leave a run thread blocked


def receive_all(socket):
    """Messages until the server closes the socket, a list of events taken as its events one by one."""
    messages = []
    while True:
        try:
            message = socket.receive_json()
        except WebSocketDisconnect:
            return messages
        messages.extend(message if isinstance(message, list) else [message])
        if len(messages) > 10_000:
            raise AssertionError("the socket never closed")


# --- starting runs --------------------------------------------------------------------------------------------


def test_a_run_of_a_pipeline_succeeds_and_records_every_card(client, regression_csv):
    run_id = start(client, {"pipeline": loop(regression_csv)})
    detail = wait(client, run_id)
    assert detail["run_id"] == run_id and detail["status"] == "succeeded" and detail["error"] is None
    assert detail["executor"] == "local" and detail["persist"] == "checkpoint"
    assert detail["name"] == "basic-training-loop"
    assert [card["card_id"] for card in detail["cards"]] == card_ids()
    assert {card["status"] for card in detail["cards"]} == {"done"}
    assert [card["position"] for card in detail["cards"]] == list(range(len(card_ids())))
    assert detail["cards"][0]["card_type"] == "data_load"
    assert all(card["seconds"] is not None and card["cache_hit"] is False for card in detail["cards"])
    assert detail["pipeline"]["cards"][0]["config"]["path"] == str(regression_csv)
    assert detail["started_at"] <= detail["ended_at"]
    assert isinstance(detail["events"], int) and detail["events"] > 0


def test_a_run_started_is_answered_as_running_while_it_runs(client, regression_csv, gate):
    gate.after = "data"
    response = client.post("/api/runs", json={"threads": 1, "pipeline": loop(regression_csv)})
    assert response.status_code == 201 and response.json()["status"] == "running"
    gate.open()
    assert wait(client, response.json()["run_id"])["status"] == "succeeded"


def test_an_unchanged_pipeline_is_served_from_the_store(client, regression_csv):
    finished_run(client, regression_csv)
    again = wait(client, start(client, {"pipeline": loop(regression_csv)}))
    assert again["status"] == "succeeded"
    assert {(card["status"], card["cache_hit"]) for card in again["cards"]} == {("cached", True)}
    fresh = wait(client, start(client, {"pipeline": loop(regression_csv), "cache": False}))
    assert {card["status"] for card in fresh["cards"]} == {"done"}


def test_a_run_of_a_saved_pipeline_by_name(client, regression_csv):
    assert client.put("/api/pipelines/tiny", json=loop(regression_csv, name="tiny")).status_code == 200
    run_id = start(client, {"name": "tiny", "persist": "all"})
    detail = wait(client, run_id)
    assert detail["status"] == "succeeded" and detail["name"] == "tiny" and detail["persist"] == "all"
    assert [card["card_id"] for card in detail["cards"]] == card_ids()


def test_the_one_batch_example_runs_from_the_examples(client):
    example = client.get("/api/examples/one-batch").json()
    detail = wait(client, start(client, {"pipeline": example}))
    assert detail["status"] == "succeeded", detail["error"]
    assert detail["name"] == "one-batch"
    assert [card["card_id"] for card in detail["cards"]][-2:] == ["step0", "evaluate"]


def test_a_missing_saved_pipeline_is_404_and_a_bad_name_400(client):
    missing = client.post("/api/runs", json={"name": "nothing"})
    assert missing.status_code == 404 and "no saved pipeline 'nothing'" in missing.json()["detail"]
    assert client.post("/api/runs", json={"name": "-bad name"}).status_code == 400
    assert client.get("/api/runs").json() == []


@pytest.mark.parametrize("both", [True, False])
def test_both_a_pipeline_and_a_name_or_neither_is_422(client, regression_csv, both):
    body = {"pipeline": loop(regression_csv), "name": "tiny"} if both else {"executor": "local"}
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == "give either 'pipeline' or 'name'"


def test_an_invalid_pipeline_is_422_with_its_problems_and_records_no_run(client, regression_csv):
    pipeline = loop(regression_csv)
    pipeline["cards"][1]["config"]["input_dim"] = 0  # model
    pipeline["cards"][5]["inputs"]["model"] = "model.modle"  # fwd0
    response = client.post("/api/runs", json={"pipeline": pipeline})
    assert response.status_code == 422
    problems = response.json()["detail"]["problems"]
    assert {(p["card"], p["field"]) for p in problems} == {("model", "input_dim"), ("fwd0", "model")}
    assert client.get("/api/runs").json() == []


def test_a_malformed_pipeline_is_422_with_its_problems(client):
    response = client.post("/api/runs", json={"pipeline": {"version": 1, "cards": [{"id": "x"}]}})
    assert response.status_code == 422
    assert response.json()["detail"]["problems"][0]["card"] == "x"
    assert response.json()["detail"]["problems"][0]["field"] == "type"


def test_a_data_path_outside_the_data_root_is_422_naming_the_card_and_field(client, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    for path in (str(outside), "../" + outside.name, "/etc/passwd"):
        response = client.post("/api/runs", json={"pipeline": loop(path)})
        assert response.status_code == 422, path
        problems = response.json()["detail"]["problems"]
        assert [(p["card"], p["field"]) for p in problems] == [("data", "path")]
        assert "outside the server's data root" in problems[0]["message"]
    assert client.get("/api/runs").json() == []


@pytest.mark.parametrize("extra", [{"executor": "gpu"}, {"persist": "nothing"}, {"threads": 0},
                                   {"threads": 1000}, {"unknown_option": 1}, {"cache": "maybe"}])
def test_bad_run_options_are_422(client, regression_csv, extra):
    response = client.post("/api/runs", json={"pipeline": loop(regression_csv), **extra})
    assert response.status_code == 422
    assert client.get("/api/runs").json() == []


def test_unknown_executor_names_the_valid_ones(client, regression_csv):
    detail = client.post("/api/runs", json={"pipeline": loop(regression_csv), "executor": "gpu"}).json()["detail"]
    assert detail[0]["loc"][-1] == "executor" and "'local', 'process' or 'ray'" in detail[0]["msg"]


def test_an_executor_registered_after_the_server_started_runs_by_name(client, regression_csv, monkeypatch):
    from cardloop.engine import executors

    monkeypatch.setattr(executors, "_executors", dict(executors._executors))
    executors.register_executor("also_local", executors.executor_entry("local").factory)
    detail = client.post("/api/runs", json={"pipeline": loop(regression_csv), "executor": "gpu"}).json()["detail"]
    assert "'local', 'process', 'ray' or 'also_local'" in detail[0]["msg"]
    run_id = finished_run(client, regression_csv, executor="also_local")
    assert client.get(f"/api/runs/{run_id}").json()["executor"] == "also_local"


def test_the_executors_are_listed_in_registration_order_with_their_summaries(client):
    listed = client.get("/api/executors").json()
    assert [e["name"] for e in listed] == ["local", "process", "ray"]
    assert listed[0]["summary"] == "this process" and "--ray-address" in listed[2]["summary"]


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_ray_address_with_another_executor_is_422_naming_the_field_and_what_is_valid(client, regression_csv,
                                                                                         executor):
    body = {"pipeline": loop(regression_csv), "executor": executor, "ray_address": "127.0.0.1:6379"}
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"][-1] == "ray_address"
    assert problem["msg"] == (f"ray_address is for the ray executor, not '{executor}': choose executor 'ray' or "
                              "leave ray_address out")
    assert client.get("/api/runs").json() == []


def test_a_blank_ray_address_is_no_address(client, regression_csv):
    run_id = finished_run(client, regression_csv, ray_address="  ")
    assert client.get(f"/api/runs/{run_id}").json()["executor"] == "local"


def test_until_only_and_from_are_accepted(client, regression_csv):
    finished_run(client, regression_csv, persist="all")

    until = wait(client, start(client, {"pipeline": loop(regression_csv), "persist": "all", "until": "fwd0"}))
    assert until["status"] == "succeeded"
    assert [card["card_id"] for card in until["cards"]] == card_ids()[:card_ids().index("fwd0") + 1]

    only = wait(client, start(client, {"pipeline": loop(regression_csv), "persist": "all", "only": "loss1"}))
    assert only["status"] == "succeeded"
    assert [card["card_id"] for card in only["cards"] if card["status"] == "done"] == ["loss1"]

    for key in ("from", "from_card"):
        again = wait(client, start(client, {"pipeline": loop(regression_csv), "persist": "all", key: "step1"}))
        assert again["status"] == "succeeded"
        assert [card["card_id"] for card in again["cards"] if card["status"] == "done"] == ["step1"]


@pytest.mark.parametrize("option", ["only", "until", "from"])
def test_a_partial_run_naming_an_unknown_card_is_422(client, regression_csv, option):
    response = client.post("/api/runs", json={"pipeline": loop(regression_csv), option: "nope"})
    assert response.status_code == 422
    assert "card 'nope'" in response.json()["detail"]


def test_only_without_stored_inputs_is_422_saying_what_is_missing(client, regression_csv):
    response = client.post("/api/runs", json={"pipeline": loop(regression_csv), "only": "loss1"})
    assert response.status_code == 422
    assert "cannot run alone" in response.json()["detail"]


# --- listing and reading runs ---------------------------------------------------------------------------------


def test_runs_is_empty_for_a_new_store(client, store):
    response = client.get("/api/runs")
    assert response.status_code == 200 and response.json() == []


def test_runs_are_listed_newest_first_with_a_limit(client, regression_csv):
    first = finished_run(client, regression_csv)
    time.sleep(0.01)
    second = finished_run(client, regression_csv, cache=False)
    listed = client.get("/api/runs").json()
    assert [run["run_id"] for run in listed] == [second, first]
    assert listed[0]["status"] == "succeeded" and listed[0]["executor"] == "local"
    assert listed[0]["persist"] == "checkpoint" and listed[0]["name"] == "basic-training-loop"
    assert listed[0]["started_at"] <= listed[0]["ended_at"]
    assert [run["run_id"] for run in client.get("/api/runs?limit=1").json()] == [second]
    assert len(client.get("/api/runs?limit=0").json()) == 1  # clamped to at least one
    assert client.get("/api/runs?limit=many").status_code == 422


def test_an_unknown_run_is_404(client, regression_csv):
    assert client.get("/api/runs/nothing").status_code == 404
    finished_run(client, regression_csv)
    response = client.get("/api/runs/nothing")
    assert response.status_code == 404 and "no run has the id or id prefix 'nothing'" in response.json()["detail"]


def test_a_run_is_found_by_a_unique_prefix(client, regression_csv):
    run_id = finished_run(client, regression_csv)
    assert client.get(f"/api/runs/{run_id[:-2]}").json()["run_id"] == run_id


def test_metrics_give_the_loss_per_step(client, regression_csv):
    run_id = finished_run(client, regression_csv)
    response = client.get(f"/api/runs/{run_id}/metrics")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "loss_value"
    assert [(p["step"], p["card_id"]) for p in body["points"]] == [(0, "loss0"), (1, "loss1")]
    assert all(isinstance(p["value"], float) and p["value"] > 0 for p in body["points"])
    named = client.get(f"/api/runs/{run_id}/metrics", params={"name": "loss_value"}).json()
    assert named == body
    assert client.get(f"/api/runs/{run_id}/metrics", params={"name": "nothing"}).json() == {
        "name": "nothing", "points": [], "iterations": []}
    assert client.get("/api/runs/nothing/metrics").status_code == 404


def test_the_outputs_of_a_card_are_previewed(client, regression_csv):
    run_id = finished_run(client, regression_csv)
    step = client.get(f"/api/runs/{run_id}/cards/step1/outputs")
    assert step.status_code == 200
    body = step.json()
    assert body["run_id"] == run_id and body["card_id"] == "step1"
    model = body["outputs"]["model"]
    assert model["kind"] == "model" and model["stored"] is True and model["state"] == "model.model"
    assert model["preview"]["parameters"] == 4 * 8 + 8 + 8 + 1
    assert body["outputs"]["optimizer"]["preview"]["type"] == "Adam"
    assert body["outputs"]["step_info"]["preview"]["step"] == 2

    loss = client.get(f"/api/runs/{run_id}/cards/loss0/outputs").json()["outputs"]
    assert loss["loss"] == {"kind": "loss", "stored": False, "state": None, "preview": None}
    metrics = client.get(f"/api/runs/{run_id}/metrics").json()["points"]
    assert loss["loss_value"]["kind"] == "scalar" and loss["loss_value"]["preview"] == metrics[0]["value"]


def test_outputs_of_an_unknown_card_or_run_are_404(client, regression_csv):
    assert client.get("/api/runs/nothing/cards/step0/outputs").status_code == 404  # no store yet
    run_id = finished_run(client, regression_csv)
    response = client.get(f"/api/runs/{run_id}/cards/nothing/outputs")
    assert response.status_code == 404 and "no card 'nothing'" in response.json()["detail"]
    assert client.get("/api/runs/nothing/cards/step0/outputs").status_code == 404


# --- cancelling -----------------------------------------------------------------------------------------------


def test_cancelling_a_run_that_is_not_running_is_409(client, regression_csv):
    response = client.post("/api/runs/nothing/cancel")
    assert response.status_code == 409 and "is not running" in response.json()["detail"]
    run_id = finished_run(client, regression_csv)
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 409


def test_cancel_stops_a_run_between_two_cards(client, regression_csv, gate):
    gate.after = "step0"
    run_id = start(client, {"pipeline": loop(regression_csv, batches=40)})
    assert gate.held.wait(60)
    response = client.post(f"/api/runs/{run_id}/cancel")
    assert response.status_code == 200 and response.json() == {"run_id": run_id, "cancelling": True}
    gate.open()
    detail = wait(client, run_id)
    assert detail["status"] == "cancelled" and "cancelled" in detail["error"]
    # step0 finished; batch1, the next card, was refused before it started: nothing after step0 ran
    assert [card["card_id"] for card in detail["cards"]] == card_ids(40)[:card_ids(40).index("step0") + 1]
    assert {card["status"] for card in detail["cards"]} == {"done"}
    assert client.get("/api/runs").json()[0]["status"] == "cancelled"
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 409

    with client.websocket_connect(f"/api/runs/{run_id}/events") as socket:
        messages = receive_all(socket)
    assert messages[0]["kind"] == "snapshot" and messages[0]["run"]["status"] == "cancelled"
    assert messages[-1] == {"kind": "closed", "status": "cancelled", "error": None}
    assert messages[-2]["kind"] == "run_finished" and messages[-2]["status"] == "cancelled"
    assert "batch1" not in {m.get("card_id") for m in messages}


def test_cancelled_runs_do_not_keep_the_next_run_from_running(client, regression_csv, gate):
    run_id = start(client, {"pipeline": loop(regression_csv, batches=40)})
    assert gate.held.wait(60)
    client.post(f"/api/runs/{run_id}/cancel")
    gate.open()
    assert wait(client, run_id)["status"] == "cancelled"
    assert finished_run(client, regression_csv)


# --- live events ----------------------------------------------------------------------------------------------


def test_the_websocket_follows_a_run_live_from_a_snapshot_to_closed(client, regression_csv, gate):
    gate.after = "step0"
    run_id = start(client, {"pipeline": loop(regression_csv)})
    assert gate.held.wait(60)
    with client.websocket_connect(f"/api/runs/{run_id}/events") as socket:
        snapshot = socket.receive_json()
        gate.open()  # the rest of the run happens while the socket is open
        messages = receive_all(socket)
    assert snapshot["kind"] == "snapshot"
    assert snapshot["run"]["run_id"] == run_id and snapshot["run"]["status"] == "running"
    shown = [card["card_id"] for card in snapshot["run"]["cards"]]  # what the recorder has flushed so far
    assert shown == card_ids()[:len(shown)] and len(shown) <= card_ids().index("step0") + 1

    kinds = [m["kind"] for m in messages]
    assert kinds[0] == "run_started" and kinds[-2:] == ["run_finished", "closed"]
    assert messages[0]["run_id"] == run_id and messages[0]["total"] == len(card_ids())
    # every card started and finished exactly once, in script order: none lost, none sent twice
    assert [m["card_id"] for m in messages if m["kind"] == "started"] == card_ids()
    assert [m["card_id"] for m in messages if m["kind"] == "done"] == card_ids()
    losses = [m["metrics"]["loss_value"] for m in messages if m["kind"] == "done" and m["card_id"].startswith("loss")]
    assert len(losses) == 2
    assert messages[-2]["status"] == "succeeded"
    assert messages[-1] == {"kind": "closed", "status": "succeeded", "error": None}


def test_the_events_of_a_run_come_in_batches_not_one_message_each(client, regression_csv):
    run_id = finished_run(client, regression_csv)  # still this server's: its events are kept and replayed
    with client.websocket_connect(f"/api/runs/{run_id}/events") as socket:
        snapshot = socket.receive_json()
        events = socket.receive_json()
        with pytest.raises(WebSocketDisconnect):
            socket.receive_json()
    assert snapshot["kind"] == "snapshot"
    assert isinstance(events, list) and [e["kind"] for e in events[:1] + events[-2:]] == [
        "run_started", "run_finished", "closed"]
    assert [e["card_id"] for e in events if e["kind"] == "done"] == card_ids()


def test_a_reconnect_after_the_run_shows_the_state_from_the_records(client, regression_csv, store, tmp_path):
    run_id = finished_run(client, regression_csv)
    with client.websocket_connect(f"/api/runs/{run_id}/events") as socket:
        messages = receive_all(socket)
    assert messages[0]["kind"] == "snapshot" and messages[0]["run"]["status"] == "succeeded"
    assert [card["card_id"] for card in messages[0]["run"]["cards"]] == card_ids()
    assert messages[-1]["kind"] == "closed"

    # a server started later knows the run only from its records: a snapshot, then the socket closes
    later = TestClient(create_app(store, tmp_path / "pipelines", tmp_path, None, TESTCLIENT_HOSTS))
    with later.websocket_connect(f"/api/runs/{run_id}/events") as socket:
        messages = receive_all(socket)
    assert len(messages) == 1 and messages[0]["kind"] == "snapshot"
    run = messages[0]["run"]
    assert run["status"] == "succeeded" and run["events"] is None
    assert [(card["card_id"], card["status"]) for card in run["cards"]] == [(c, "done") for c in card_ids()]
    assert later.get(f"/api/runs/{run_id}").json()["cards"] == run["cards"]


def test_a_failed_card_reaches_the_records_and_the_socket(client, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4\n")
    pipeline = basic_training_loop(path=str(bad), input_dim=4, prepare=False, batches=1, batch_size=2,
                                   layers=(8,)).to_dict()  # one feature column, a model for four
    detail = wait(client, start(client, {"pipeline": pipeline}))
    assert detail["status"] == "failed"
    failed = [card for card in detail["cards"] if card["status"] == "failed"]
    assert [card["card_id"] for card in failed] == ["fwd0"] and failed[0]["error"]
    with client.websocket_connect(f"/api/runs/{detail['run_id']}/events") as socket:
        messages = receive_all(socket)
    assert messages[-1]["kind"] == "closed" and messages[-1]["status"] == "failed"
    assert "fwd0" in messages[-1]["error"]
    assert any(m["kind"] == "failed" and m["card_id"] == "fwd0" for m in messages)


def test_the_websocket_of_an_unknown_run_is_closed_cleanly(client):
    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/api/runs/nothing/events") as socket:
            socket.receive_json()
    assert not isinstance(closed.value, WebSocketDenialResponse)  # a close frame, not an HTTP answer


def strict_json(text):
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are no numbers there."""
    def refuse(constant):
        raise AssertionError(f"the server sent {constant}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_diverged_loss_reaches_the_api_and_its_events_as_json_strings(client, regression_csv):
    run_id = start(client, {"pipeline": loop(regression_csv, batches=3, optimizer_type="sgd", learning_rate=1e30)})
    wait(client, run_id)
    points = strict_json(client.get(f"/api/runs/{run_id}/metrics").text)["points"]
    assert isinstance(points[0]["value"], float) and {p["value"] for p in points[1:]} <= {"NaN", "Infinity"}
    detail = strict_json(client.get(f"/api/runs/{run_id}").text)
    assert detail["status"] == "succeeded" and len(detail["cards"]) == len(card_ids(3))
    with client.websocket_connect(f"/api/runs/{run_id}/events") as socket:
        messages = []
        while True:
            try:
                message = strict_json(socket.receive_text())
            except WebSocketDisconnect:
                break
            messages.extend(message if isinstance(message, list) else [message])
    losses = [m["metrics"]["loss_value"] for m in messages if m.get("kind") == "done" and "loss_value" in
              m.get("metrics", {})]
    assert len(losses) == 3 and {value for value in losses[1:]} <= {"NaN", "Infinity"}


def test_a_damaged_store_is_503_with_its_sentence(client, store):
    store.mkdir()
    (store / "runs.sqlite").write_bytes(b"garbage" * 1000)
    response = client.get("/api/runs")
    assert response.status_code == 503 and "are damaged (file is not a database)" in response.json()["detail"]
