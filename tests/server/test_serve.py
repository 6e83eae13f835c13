"""`cardloop serve` as a user runs it: a real process, a real port on loopback, real HTTP."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from cardloop.store.records import RunRecords


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(tmp_path, *args):
    """Start `cardloop serve` with its output unbuffered, in tmp_path (the default pipelines folder goes there)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "cardloop.cli", "serve", "--store", str(tmp_path / "store"),
               "--data-root", str(tmp_path), "--pipelines", str(tmp_path / "pipelines"), *map(str, args)]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
    process.stdout.close()
    process.stderr.close()


def first_line(process, timeout=90.0):
    """The first line the server prints (read in a thread, so that a silent server cannot hang the test)."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, f"the server printed nothing within {timeout}s"
    return lines[0]


def wait_until_answering(process, url, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {process.stderr.read()}")
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not answer {url} within {timeout}s")


@pytest.fixture
def server(tmp_path):
    port = free_port()
    process = serve(tmp_path, "--port", port)
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}/api/cards")
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop(process)


def test_serve_answers_the_api_over_http(server, tmp_path):
    base, process = server
    response = httpx.get(f"{base}/api/cards", timeout=10.0)
    assert response.status_code == 200
    names = {card["id"] for card in response.json()["cards"]}
    assert {"data_load", "training_forward", "evaluate"} <= names
    assert "model" in response.json()["kinds"]

    assert httpx.get(f"{base}/api/runs", timeout=10.0).json() == []
    assert "/api/runs" in httpx.get(f"{base}/openapi.json", timeout=10.0).json()["paths"]
    page = httpx.get(f"{base}/", timeout=10.0)
    assert page.status_code == 200 and "cardloop" in page.text
    foreign = httpx.post(f"{base}/api/validate", json={"version": 1, "cards": []},
                         headers={"Origin": "http://evil.example"}, timeout=10.0)
    assert foreign.status_code == 403
    assert (tmp_path / "pipelines").is_dir()


def test_serve_on_loopback_prints_the_address_without_a_token(tmp_path):
    port = free_port()
    process = serve(tmp_path, "--port", port)
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}/api/cards")
        first = first_line(process)
    finally:
        stop(process)
    assert f"cardloop editor at http://127.0.0.1:{port}/" in first and "token" not in first


def test_serve_with_a_token_requires_it(tmp_path):
    port = free_port()
    process = serve(tmp_path, "--port", port, "--token", "given-token")
    try:
        refused = wait_until_answering(process, f"http://127.0.0.1:{port}/api/cards")
        assert refused.status_code == 401
        passed = httpx.get(f"http://127.0.0.1:{port}/api/cards",
                           headers={"Authorization": "Bearer given-token"}, timeout=10.0)
        assert passed.status_code == 200
    finally:
        stop(process)


def test_serve_on_all_interfaces_prints_a_generated_token(tmp_path):
    process = serve(tmp_path, "--host", "0.0.0.0", "--port", free_port())
    try:
        first = first_line(process)  # printed before the server starts listening
    finally:
        stop(process)
    found = re.search(r"serving on 0\.0\.0\.0: clients must send the token (\S+)", first)
    assert found, first
    assert len(found.group(1)) >= 32


def test_serve_on_an_empty_host_listens_everywhere_and_requires_a_token(tmp_path):
    port = free_port()
    process = serve(tmp_path, "--host", "", "--port", port)
    try:
        first = first_line(process)
        found = re.search(r"serving on every interface: clients must send the token (\S+)", first)
        assert found, first
        refused = wait_until_answering(process, f"http://127.0.0.1:{port}/api/cards")
        assert refused.status_code == 401
        passed = httpx.get(f"http://127.0.0.1:{port}/api/cards",
                           headers={"Authorization": f"Bearer {found.group(1)}"}, timeout=10.0)
        assert passed.status_code == 200
    finally:
        stop(process)


def websocket_handshake_status(base, path, host):
    """The status line a WebSocket handshake for `path` gets when its Host header is `host`."""
    address, port = base.removeprefix("http://").split(":")
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection((address, int(port)), timeout=10.0) as connection:
        connection.sendall(request.encode())
        return connection.recv(4096).decode("latin-1").split("\r\n")[0]


def test_serve_refuses_a_host_name_it_does_not_answer_to(server, tmp_path):
    base, process = server
    rebound = {"Host": "rebind.example:8000", "Origin": "http://rebind.example:8000"}
    refused = httpx.put(f"{base}/api/pipelines/x", json={"version": 1, "cards": []}, headers=rebound, timeout=10.0)
    assert refused.status_code == 403 and "host 'rebind.example:8000' is not allowed" in refused.json()["detail"]
    assert not list((tmp_path / "pipelines").iterdir())
    assert httpx.get(f"{base}/api/cards", headers={"Host": "localhost"}, timeout=10.0).status_code == 200

    records = RunRecords(tmp_path / "store" / "runs.sqlite")  # a recorded run, so that a local socket opens
    run_id = records.start_run("20260101-000000-abcdef", name="recorded", pipeline={"version": 1, "cards": []},
                               executor="local", persist="checkpoint")
    records.finish_run(run_id, "succeeded", None)
    events = f"/api/runs/{run_id}/events"
    assert " 101 " in websocket_handshake_status(base, events, base.removeprefix("http://"))
    assert " 403 " in websocket_handshake_status(base, events, "rebind.example:8000")


def test_serve_answers_a_host_name_the_user_allows(tmp_path):
    port = free_port()
    process = serve(tmp_path, "--port", port, "--allow-host", "box.lan")
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}/api/cards")
        allowed = httpx.get(f"http://127.0.0.1:{port}/api/cards", headers={"Host": f"box.lan:{port}"}, timeout=10.0)
        assert allowed.status_code == 200
        other = httpx.get(f"http://127.0.0.1:{port}/api/cards", headers={"Host": f"other.lan:{port}"}, timeout=10.0)
        assert other.status_code == 403
    finally:
        stop(process)


def refused(tmp_path, *args) -> str:
    """What `cardloop serve` with `args` prints before it exits, having checked that it exits with code 1."""
    process = serve(tmp_path, "--port", free_port(), *args)
    try:
        process.wait(timeout=90)
        output = process.stdout.read() + process.stderr.read()
    finally:
        stop(process)
    assert process.returncode == 1, output
    return output


def test_serve_with_an_allowed_host_that_is_no_name_says_so_and_exits_1(tmp_path):
    output = refused(tmp_path, "--allow-host", "box.lan:8000")
    assert "error: --allow-host 'box.lan:8000' is not a host name" in output and "Traceback" not in output


DOUBLING_CARDS = '''
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.kinds import SCALAR


class DoubleConfig(CardConfig):
    value: float = 1.0


@card("test_serve_double", title="Double", category="evaluation", outputs=[Port("doubled", SCALAR, metric=True)],
      config=DoubleConfig)
def double(config):
    """Twice its value."""
    return {"doubled": 2 * config.value}
'''


def test_serve_with_a_card_file_lists_its_cards_and_runs_them(tmp_path):
    cards = tmp_path / "elsewhere" / "doubling.py"
    cards.parent.mkdir()
    cards.write_text(DOUBLING_CARDS)
    port = free_port()
    process = serve(tmp_path, "--port", port, "--cards", cards.relative_to(tmp_path))  # relative to the cwd
    try:
        base = f"http://127.0.0.1:{port}"
        catalogue = wait_until_answering(process, f"{base}/api/cards").json()["cards"]
        assert "test_serve_double" in {entry["id"] for entry in catalogue}
        pipeline = {"version": 1, "cards": [{"id": "twice", "type": "test_serve_double", "config": {"value": 21}}]}
        for executor in ("local", "process"):
            started = httpx.post(f"{base}/api/runs", json={"pipeline": pipeline, "executor": executor}, timeout=60.0)
            assert started.status_code == 201, started.text
            run_id = started.json()["run_id"]
            deadline = time.monotonic() + 120
            while (run := httpx.get(f"{base}/api/runs/{run_id}", timeout=10.0).json())["status"] == "running":
                assert time.monotonic() < deadline, run
                time.sleep(0.2)
            assert run["status"] == "succeeded", run
        with RunRecords(tmp_path / "store" / "runs.sqlite") as records:
            assert [metric.value for metric in records.metrics(run_id, "doubled")] == [42.0]
    finally:
        stop(process)


def test_serve_with_a_missing_card_file_says_so_and_exits_1(tmp_path):
    output = refused(tmp_path, "--cards", tmp_path / "nothing.py")
    assert "does not exist" in output and "nothing.py" in output and "Traceback" not in output
