"""The engine tests' local Ray cluster (the Ray executor's tests, tests/engine/test_ray_executor.py)."""

from __future__ import annotations

import os

import pytest

RAY_MISSING = "Ray is not installed: pip install -e '.[test,ray]' (.ci/run does) to run the Ray executor's tests"


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A Ray started for the session on this machine with 2 CPUs, no GPU (even where the machine has one) and one
    `fake_gpu` (a custom resource standing in for a GPU), its temp files and $HOME/.ray (its auth token) in the session's own folders. Without Ray the
    tests that use it are skipped, and fail under CI (whose set-up installs it)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(RAY_MISSING)
        pytest.skip(RAY_MISSING)
    home = tmp_path_factory.mktemp("home")
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        from cardloop.engine.ray_executor import start_local

        start_local(num_cpus=2, num_gpus=0, resources={"fake_gpu": 1}, _temp_dir=str(tmp_path_factory.mktemp("ray")))
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = previous

