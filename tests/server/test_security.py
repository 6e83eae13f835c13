"""Who may talk to the server: the Host names it answers to, the token, same-origin writes, the request body
limit, and data paths confined to the data root."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from cardloop.errors import CardloopError
from cardloop.examples import basic_training_loop
from cardloop.server.app import create_app
from cardloop.server.security import (LOCAL_HOSTNAMES, MAX_BODY_BYTES, allowed_hosts, confined, host_ok, is_loopback,
                                      new_token, origin_ok, token_ok)
from cardloop.store.records import RunRecords
from tests.server import TESTCLIENT_HOSTS
from tests.server.test_runs import wait

TOKEN = "s3cret-token"
FOREIGN = "http://evil.example"


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def client(store, tmp_path, data_root):
    return TestClient(create_app(store, tmp_path / "pipelines", data_root, None, TESTCLIENT_HOSTS))


@pytest.fixture
def guarded(store, tmp_path, data_root):
    return TestClient(create_app(store, tmp_path / "pipelines", data_root, TOKEN, TESTCLIENT_HOSTS))


@pytest.fixture
def recorded_run(store):
    """A finished run in the records (no torch needed): what the WebSocket shows of a past run."""
    records = RunRecords(store / "runs.sqlite")
    run_id = records.start_run("20260101-000000-abcdef", name="recorded", pipeline={"version": 1, "cards": []},
                               executor="local", persist="checkpoint")
    records.finish_run(run_id, "succeeded", None)
    return run_id


def one_batch(path):
    return basic_training_loop(path=path, input_dim=4, prepare=False, batches=1, batch_size=16,
                               layers=(8,)).to_dict()


def path_problems(client, path):
    response = client.post("/api/validate", json=one_batch(path))
    assert response.status_code == 200, response.text
    return [(p["card"], p["field"]) for p in response.json()["problems"]]


def write_csv(path):
    path.write_text("a,b,c,d,target\n" + "".join(f"{i},{i + 1},{i + 2},{i + 3},{i}\n" for i in range(40)))
    return path


# --- the Host names a loopback server answers to (DNS rebinding) ---------------------------------------------

REBIND = "rebind.example:8000"  # a name whose DNS answer an attacker switched to 127.0.0.1


@pytest.fixture
def local(store, tmp_path, data_root):
    """The app as `cardloop serve` makes it on 127.0.0.1, reached as a browser there reaches it."""
    return TestClient(create_app(store, tmp_path / "pipelines", data_root, None), base_url="http://127.0.0.1:8000")


@pytest.mark.parametrize("method,path", [("get", "/api/cards"), ("get", "/api/runs"), ("get", "/"), ("get", "/docs"),
                                         ("get", "/openapi.json"), ("put", "/api/pipelines/x"),
                                         ("post", "/api/runs"), ("post", "/api/validate")])
def test_a_request_naming_another_host_is_403_and_changes_nothing(local, tmp_path, method, path):
    kwargs = {"json": one_batch("cardloop:diabetes.csv")} if method in ("post", "put") else {}
    response = getattr(local, method)(path, headers={"Host": REBIND, "Origin": f"http://{REBIND}"}, **kwargs)
    assert response.status_code == 403
    assert response.json()["detail"].startswith(f"host '{REBIND}' is not allowed")
    assert "--allow-host" in response.json()["detail"]
    assert not list((tmp_path / "pipelines").iterdir())
    assert local.get("/api/runs").json() == []


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "127.0.0.1", "localhost:8000", "LocalHost:8000", "[::1]:8000",
                                  "127.8.9.10:8000"])
def test_loopback_addresses_and_localhost_are_answered(local, host):
    assert local.get("/api/cards", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["rebind.example", "localhost.rebind.example:8000", "127.0.0.1.nip.io:8000",
                                  "app.localhost:8000", "0.0.0.0:8000", "192.168.1.2:8000", "[::]:8000", "",
                                  "testserver"])
def test_any_other_host_is_403(local, host):
    assert local.get("/api/cards", headers={"Host": host}).status_code == 403


def test_a_websocket_naming_another_host_is_closed(local, recorded_run):
    with pytest.raises(WebSocketDisconnect) as closed:
        with local.websocket_connect(f"/api/runs/{recorded_run}/events", headers={"Host": REBIND}) as socket:
            socket.receive_json()
    assert closed.value.code == 4403
    with local.websocket_connect(f"/api/runs/{recorded_run}/events",
                                 headers={"Host": "127.0.0.1:8000"}) as socket:
        assert socket.receive_json()["kind"] == "snapshot"


def test_names_the_user_allows_are_answered(store, tmp_path, data_root):
    app = create_app(store, tmp_path / "pipelines", data_root, None, allowed_hosts("127.0.0.1", ["My-Box.lan"]))
    client = TestClient(app, base_url="http://my-box.lan:8000")
    assert client.get("/api/cards").status_code == 200
    assert client.get("/api/cards", headers={"Host": REBIND}).status_code == 403


def test_a_server_on_another_address_answers_any_host_but_wants_the_token(store, tmp_path, data_root):
    app = create_app(store, tmp_path / "pipelines", data_root, TOKEN, allowed_hosts("0.0.0.0", []))
    client = TestClient(app, base_url=f"http://{REBIND}")
    assert client.get("/api/cards").status_code == 401
    assert client.get("/api/cards", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("bind,names", [("127.0.0.1", LOCAL_HOSTNAMES | {"box.lan"}),
                                        ("localhost", LOCAL_HOSTNAMES | {"box.lan"}),
                                        ("::1", LOCAL_HOSTNAMES | {"box.lan"}),
                                        ("0.0.0.0", None), ("", None), ("::", None), ("192.168.1.2", None)])
def test_allowed_hosts_follow_the_bound_address(bind, names):
    assert allowed_hosts(bind, ["Box.LAN"]) == names


@pytest.mark.parametrize("given", ["box.lan:8000", "http://box.lan", "", "box lan", "box.lan/", "-box.lan"])
def test_an_allowed_host_that_is_no_host_name_is_an_error_naming_it(given):
    with pytest.raises(CardloopError, match=f"--allow-host {re.escape(repr(given))} is not a host name"):
        allowed_hosts("127.0.0.1", [given])


def test_an_allowed_ipv6_address_is_answered_with_or_without_brackets():
    names = allowed_hosts("127.0.0.1", ["[FE80::0001]"])
    assert names == LOCAL_HOSTNAMES | {"fe80::1"}
    assert host_ok("[fe80::1]:8000", names) and host_ok("[FE80:0::1]", names) and not host_ok("[fe80::2]", names)


def test_host_ok_strips_the_port_and_the_brackets():
    names = frozenset({"localhost", "box.lan"})
    assert host_ok("box.lan:8000", names) and host_ok("[::1]:8000", names) and host_ok("::1", names)
    assert not host_ok("box.lan.evil.example", names) and not host_ok("[::2]:8000", names)


# --- the token ------------------------------------------------------------------------------------------------

API_READS = ["/api/cards", "/api/pipelines", "/api/examples", "/api/runs", "/api/runs/x", "/api/pipelines/x"]


@pytest.mark.parametrize("path", API_READS)
def test_with_a_token_api_requests_without_it_are_401(guarded, path):
    response = guarded.get(path)
    assert response.status_code == 401
    assert "a token is required" in response.json()["detail"]


@pytest.mark.parametrize("method,path", [("post", "/api/validate"), ("put", "/api/pipelines/x"),
                                         ("delete", "/api/pipelines/x"), ("post", "/api/runs"),
                                         ("post", "/api/runs/x/cancel")])
def test_with_a_token_writes_without_it_are_401_and_change_nothing(guarded, tmp_path, method, path):
    kwargs = {"json": one_batch("cardloop:diabetes.csv")} if method in ("post", "put") else {}
    assert getattr(guarded, method)(path, **kwargs).status_code == 401
    assert not list((tmp_path / "pipelines").iterdir())


def test_a_bearer_header_or_a_token_parameter_passes(guarded):
    assert guarded.get("/api/cards", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/api/cards", params={"token": TOKEN}).status_code == 200
    saved = guarded.put("/api/pipelines/x", params={"token": TOKEN}, json=one_batch("cardloop:diabetes.csv"))
    assert saved.status_code == 200
    assert guarded.get("/api/pipelines/x", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(guarded, scheme):
    assert guarded.get("/api/cards", headers={"Authorization": f"{scheme} {TOKEN}"}).status_code == 200


def test_a_token_with_characters_beyond_ascii_is_401_not_a_server_error(guarded):
    assert guarded.get("/api/cards", headers={"Authorization": "Bearer caf\u00e9".encode("latin-1")}).status_code == 401
    assert guarded.get("/api/cards", params={"token": "caf\u00e9"}).status_code == 401


@pytest.mark.parametrize("headers,params", [
    ({"Authorization": "Bearer wrong"}, {}),
    ({"Authorization": f"Bearer {TOKEN}x"}, {}),
    ({"Authorization": TOKEN}, {}),  # no "Bearer " scheme
    ({"Authorization": f"Basic {TOKEN}"}, {}),
    ({}, {"token": "wrong"}),
    ({}, {"token": ""}),
    ({"Authorization": "Bearer wrong"}, {"token": TOKEN}),  # a bearer header is the one that counts
])
def test_a_wrong_token_is_401(guarded, headers, params):
    assert guarded.get("/api/cards", headers=headers, params=params).status_code == 401


def test_without_a_token_set_the_api_is_open(client):
    assert client.get("/api/cards").status_code == 200


def test_the_token_guards_the_api_not_the_page(guarded):
    assert guarded.get("/").status_code == 200


def test_with_a_token_the_websocket_without_it_is_closed(guarded, recorded_run):
    with pytest.raises(WebSocketDisconnect) as closed:
        with guarded.websocket_connect(f"/api/runs/{recorded_run}/events") as socket:
            socket.receive_json()
    assert closed.value.code == 4401
    with pytest.raises(WebSocketDisconnect) as closed:
        with guarded.websocket_connect(f"/api/runs/{recorded_run}/events?token=wrong") as socket:
            socket.receive_json()
    assert closed.value.code == 4401


def test_with_a_token_the_websocket_with_it_passes(guarded, recorded_run):
    with guarded.websocket_connect(f"/api/runs/{recorded_run}/events?token={TOKEN}") as socket:
        snapshot = socket.receive_json()
    assert snapshot["kind"] == "snapshot" and snapshot["run"]["run_id"] == recorded_run
    assert snapshot["run"]["status"] == "succeeded" and snapshot["run"]["name"] == "recorded"
    with guarded.websocket_connect(f"/api/runs/{recorded_run}/events",
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as socket:
        assert socket.receive_json()["kind"] == "snapshot"


def test_tokens_are_long_and_fresh():
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20 and all(len(token) >= 32 for token in tokens)


# --- same-origin writes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [("post", "/api/validate"), ("put", "/api/pipelines/x"),
                                         ("delete", "/api/pipelines/x"), ("post", "/api/runs"),
                                         ("post", "/api/runs/x/cancel")])
def test_writes_from_a_foreign_origin_are_403_and_change_nothing(client, tmp_path, method, path):
    kwargs = {"json": one_batch("cardloop:diabetes.csv")} if method in ("post", "put") else {}
    response = getattr(client, method)(path, headers={"Origin": FOREIGN}, **kwargs)
    assert response.status_code == 403
    assert FOREIGN in response.json()["detail"]
    assert not list((tmp_path / "pipelines").iterdir())
    assert client.get("/api/runs").json() == []


@pytest.mark.parametrize("origin", [FOREIGN, "null", "http://testserver.evil.example", "https://evil.example",
                                    "http://testserver:8080"])
def test_any_other_origin_is_foreign(client, origin):
    response = client.put("/api/pipelines/x", json=one_batch("cardloop:diabetes.csv"), headers={"Origin": origin})
    assert response.status_code == 403


@pytest.mark.parametrize("origin", ["http://testserver", "https://testserver"])
def test_same_origin_writes_pass(client, tmp_path, origin):
    saved = client.put("/api/pipelines/x", json=one_batch("cardloop:diabetes.csv"), headers={"Origin": origin})
    assert saved.status_code == 200
    assert (tmp_path / "pipelines" / "x.yaml").exists()
    checked = client.post("/api/validate", json=one_batch("cardloop:diabetes.csv"), headers={"Origin": origin})
    assert checked.status_code == 200 and checked.json() == {"problems": []}
    assert client.delete("/api/pipelines/x", headers={"Origin": origin}).status_code == 200


def test_writes_without_an_origin_pass(client):
    assert client.post("/api/validate", json=one_batch("cardloop:diabetes.csv")).status_code == 200


def test_reads_are_not_origin_checked(client):
    assert client.get("/api/cards", headers={"Origin": FOREIGN}).status_code == 200


def test_a_foreign_origin_with_the_token_is_still_403(guarded):
    response = guarded.post("/api/validate", json=one_batch("cardloop:diabetes.csv"),
                            headers={"Origin": FOREIGN, "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 403


class FakeRequest:
    def __init__(self, headers=None, query=None):
        self.headers, self.query_params = headers or {}, query or {}


def test_origin_ok_compares_with_the_host_header():
    assert origin_ok(FakeRequest({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}))
    assert not origin_ok(FakeRequest({"host": "127.0.0.1:8000", "origin": "http://localhost:8000"}))
    assert not origin_ok(FakeRequest({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8001"}))
    assert origin_ok(FakeRequest({"host": "127.0.0.1:8000"}))


def test_token_ok_reads_the_header_or_the_query():
    assert token_ok(FakeRequest({"authorization": f"Bearer {TOKEN}"}), TOKEN)
    assert token_ok(FakeRequest(query={"token": TOKEN}), TOKEN)
    assert not token_ok(FakeRequest(), TOKEN)
    assert not token_ok(FakeRequest({"authorization": "Bearer "}), TOKEN)


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                           ("127.5.6.7", True), ("0.0.0.0", False), ("192.168.1.2", False),
                                           ("::", False), ("example.com", False), ("", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


# --- the request body limit -----------------------------------------------------------------------------------


def padded_body(size):
    """A JSON object of exactly `size` bytes."""
    head, tail = b'{"version": 1, "cards": [], "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_a_body_over_the_limit_is_413(client):
    response = client.post("/api/validate", content=padded_body(MAX_BODY_BYTES + 1),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["detail"]
    response = client.put("/api/pipelines/x", content=padded_body(MAX_BODY_BYTES + 1),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_body_at_the_limit_is_read(client):
    response = client.post("/api/validate", content=padded_body(MAX_BODY_BYTES),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422  # read and parsed: 'pad' is no pipeline field
    assert "unknown top-level field 'pad'" in response.text


def test_a_chunked_body_over_the_limit_is_413(client):
    def chunks():
        body = padded_body(MAX_BODY_BYTES + 1024)
        for start in range(0, len(body), 1 << 20):
            yield body[start:start + (1 << 20)]

    response = client.post("/api/validate", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


# --- data paths confined to the data root ---------------------------------------------------------------------


def test_paths_inside_the_data_root_are_accepted(client, data_root):
    write_csv(data_root / "inside.csv")
    (data_root / "sub").mkdir()
    assert path_problems(client, str(data_root / "inside.csv")) == []
    assert path_problems(client, str(data_root / "sub" / ".." / "inside.csv")) == []
    assert path_problems(client, "cardloop:diabetes.csv") == []


@pytest.mark.parametrize("outside", ["/etc/passwd", "{root}/../secret.csv", "{root}/sub/../../secret.csv",
                                     "{root}-sibling/secret.csv", "../secret.csv"])
def test_paths_outside_the_data_root_are_problems_naming_the_card_and_path(client, data_root, outside):
    (data_root / "sub").mkdir()
    assert path_problems(client, outside.format(root=data_root)) == [("data", "path")]


def test_a_symlink_out_of_the_data_root_is_outside(client, data_root, tmp_path):
    secret = write_csv(tmp_path / "secret.csv")
    (data_root / "link.csv").symlink_to(secret)
    (data_root / "linked").symlink_to(tmp_path)
    assert path_problems(client, str(data_root / "link.csv")) == [("data", "path")]
    assert path_problems(client, str(data_root / "linked" / "secret.csv")) == [("data", "path")]


def test_a_run_reading_outside_the_data_root_is_refused(client, tmp_path):
    secret = write_csv(tmp_path / "secret.csv")
    response = client.post("/api/runs", json={"pipeline": one_batch(str(secret))})
    assert response.status_code == 422
    assert [(p["card"], p["field"]) for p in response.json()["detail"]["problems"]] == [("data", "path")]
    assert client.get("/api/runs").json() == []


def test_confined():
    from cardloop.datasets import DIABETES_CSV

    root = Path("/srv/data")
    assert confined(Path("/srv/data/a.csv"), root) and confined(Path("/srv/data/x/../a.csv"), root)
    assert confined(Path(DIABETES_CSV), root)
    assert not confined(Path("/srv/database.csv"), root) and not confined(Path("/srv/data/../a.csv"), root)


def test_a_packaged_data_set_name_cannot_name_an_absolute_path(client, tmp_path):
    secret = write_csv(tmp_path / "secret.csv")
    assert path_problems(client, f"cardloop:{secret}") == [("data", "path")]


def test_a_packaged_data_set_name_cannot_climb_out(client, tmp_path):
    secret = write_csv(tmp_path / "secret.csv")
    climb = "cardloop:" + "../" * 30 + str(secret).lstrip("/")
    assert path_problems(client, climb) == [("data", "path")]


def test_a_home_relative_path_is_outside(client, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    write_csv(home / "secret.csv")
    monkeypatch.setenv("HOME", str(home))
    assert path_problems(client, "~/secret.csv") == [("data", "path")]


def test_a_relative_path_never_reads_a_file_outside_the_data_root(client, data_root, tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    write_csv(elsewhere / "secret.csv")  # outside the data root, where the server happens to run
    monkeypatch.chdir(elsewhere)
    response = client.post("/api/runs", json={"pipeline": one_batch("secret.csv"), "threads": 1})
    if response.status_code != 422:
        assert response.status_code == 201
        detail = wait(client, response.json()["run_id"])
        assert detail["status"] == "failed", "the run read secret.csv from outside the data root"
