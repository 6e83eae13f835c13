"""Shared fixtures: pinned torch threads, a fresh store, a small numeric data file, the session's S3 server and
the session's Ray.

The suite compares pipelines with hand-written CPU loops bit for bit, and `device: auto` would train them on
CUDA on a GPU machine: so CUDA is hidden from the whole session (and the process executor's workers, which
inherit the environment) before torch is imported, unless CARDLOOP_TEST_CUDA=1 asks for it, as
tests/gpu_check.sh does for the GPU-aware test files.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

TEST_CUDA = os.environ.get("CARDLOOP_TEST_CUDA") == "1"
if not TEST_CUDA:
    if "torch" in sys.modules:  # too late to hide it: torch may have looked for devices already
        raise RuntimeError("tests/conftest.py must run before torch is imported, to hide CUDA from the suite")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header() -> str:
    if TEST_CUDA:
        return "cardloop: CUDA visible (CARDLOOP_TEST_CUDA=1); the CPU oracle tests expect a CPU machine"
    return "cardloop: CUDA hidden from the suite; tests/gpu_check.sh runs the GPU tests on a GPU machine"


@pytest.fixture(autouse=True)
def _pin_torch_threads():
    """Torch's CPU results depend on the thread count: bit-for-bit comparisons pin it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def regression_csv(tmp_path):
    """100 rows of 4 standardized features and a noisy linear target, as a CSV file."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((100, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 1.0]) + 0.1 * rng.standard_normal(100)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(target=y)
    path = tmp_path / "regression.csv"
    frame.to_csv(path, index=False)
    return path


S3_MISSING = "the S3 tests need moto[server] (the test extra) and s3fs (cardloop[s3])"
RAY_MISSING = "Ray is not installed: pip install -e '.[test,ray]' (.ci/run does) to run the Ray executor's tests"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1 (tests/s3.py), with the AWS_* variables pointing at it
    (and at no credentials file of the user's) for the session."""
    moto_server = pytest.importorskip("moto.server", reason=S3_MISSING)
    s3fs = pytest.importorskip("s3fs", reason=S3_MISSING)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    nowhere = str(tmp_path_factory.mktemp("aws") / "none")
    settings = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": endpoint, "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere}
    with _environment(settings):
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield endpoint
        finally:
            server.stop()
            s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def ray_cluster(request, tmp_path_factory):
    """A Ray started for the session on this machine with 2 CPUs, no GPU (even where the machine has one) and one
    `fake_gpu` (a custom resource standing in for a GPU), its temp files and $HOME/.ray (its auth token) in the session's own folders. Its processes keep the
    environment they start with, as a cluster's nodes do: so the session's S3 server (when moto is installed) is
    started first, and the actors reach it as a node reaches S3 with its own credentials. Without Ray the tests
    that use it are skipped, and fail under CI (whose set-up installs it)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(RAY_MISSING)
        pytest.skip(RAY_MISSING)
    if all(importlib.util.find_spec(name) is not None for name in ("moto", "s3fs")):
        request.getfixturevalue("s3_server")
    with _environment({"HOME": str(tmp_path_factory.mktemp("home"))}):
        from cardloop.engine.ray_executor import start_local

        start_local(num_cpus=2, num_gpus=0, resources={"fake_gpu": 1}, _temp_dir=str(tmp_path_factory.mktemp("ray")))
        try:
            yield ray
        finally:
            ray.shutdown()



@pytest.fixture
def ray_without_actors(ray_cluster):
    """The session's Ray, with no warm state actor before the test and none left behind after it (each test's
    store gets an actor of its own)."""
    from cardloop.engine import ray_executor

    ray_executor.stop_workers()
    yield ray_cluster
    ray_executor.stop_workers()


@contextmanager
def _environment(settings: dict[str, str]) -> Iterator[None]:
    """The environment variables `settings` set, and put back as they were afterwards."""
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
