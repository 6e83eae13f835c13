"""Runs on the Ray executor through the run API of a real `cardloop serve` process: a fresh process, because a
process already connected to Ray (the engine tests' session cluster) uses that connection whatever the address.
Ray's files ($HOME/.ray, its temp folder) go into the test's own folders."""

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.server.test_runs import loop
from tests.server.test_serve import free_port, serve, stop, wait_until_answering

RAY_MISSING = "Ray is not installed: pip install -e '.[test,ray]' (.ci/run does) to run the Ray executor's tests"


@pytest.fixture
def server(tmp_path, tmp_path_factory, monkeypatch):
    """`cardloop serve` on a free loopback port, with HOME and RAY_TMPDIR in the test's folders (short ones: Ray's
    socket paths must stay under 108 bytes)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(RAY_MISSING)
        pytest.skip(RAY_MISSING)
    for name in ("HOME", "RAY_TMPDIR"):
        monkeypatch.setenv(name, str(tmp_path_factory.mktemp(name[:3].lower())))
    port = free_port()
    process = serve(tmp_path, "--port", port)
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}/api/cards")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def run_to_its_end(server, body, timeout=300.0):
    """Start a run through the API; its detail once it is no longer running (or the refusal's detail)."""
    response = httpx.post(f"{server}/api/runs", json={"threads": 1, **body}, timeout=timeout)
    if response.status_code != 201:
        return response.status_code, response.json()["detail"]
    run_id = response.json()["run_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = httpx.get(f"{server}/api/runs/{run_id}", timeout=30.0).json()
        if detail["status"] != "running":
            return 201, detail
        time.sleep(0.2)  # polling interval while the run goes on
    raise AssertionError(f"run {run_id} still running after {timeout}s")


def losses(server, run_id):
    return [p["value"] for p in httpx.get(f"{server}/api/runs/{run_id}/metrics", timeout=30.0).json()["points"]]


def test_the_ray_address_reaches_the_run_which_refuses_one_where_nothing_answers(server, regression_csv):
    with socket.socket() as bound:  # bound but not listening: the port is taken, and refuses connections
        bound.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{bound.getsockname()[1]}"
        code, detail = run_to_its_end(server, {"pipeline": loop(regression_csv, batches=1), "executor": "ray",
                                               "ray_address": address})
    said = detail if isinstance(detail, str) else detail["error"]
    assert f"no Ray cluster answers at '{address}' (--ray-address): Connection refused" in said, (code, detail)


def test_a_run_on_a_ray_the_server_starts_ends_as_the_local_run_does(server, regression_csv):
    pipeline = loop(regression_csv, batches=1)
    _, local = run_to_its_end(server, {"pipeline": pipeline})
    _, on_ray = run_to_its_end(server, {"pipeline": pipeline, "executor": "ray", "cache": False})
    assert (on_ray["status"], on_ray["executor"]) == ("succeeded", "ray"), on_ray["error"]
    assert losses(server, on_ray["run_id"]) == losses(server, local["run_id"]) != []
    assert any(Path(os.environ["RAY_TMPDIR"]).iterdir()) and (Path(os.environ["HOME"]) / ".ray").exists()
