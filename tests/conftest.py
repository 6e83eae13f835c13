"""Shared fixtures: pinned torch threads, a fresh store, and a small numeric data file.

The suite compares pipelines with hand-written CPU loops bit for bit, and `device: auto` would train them on
CUDA on a GPU machine: so CUDA is hidden from the whole session (and the process executor's workers, which
inherit the environment) before torch is imported, unless CARDLOOP_TEST_CUDA=1 asks for it, as
tests/gpu_check.sh does for the GPU-aware test files.
"""

from __future__ import annotations

import os
import sys

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
