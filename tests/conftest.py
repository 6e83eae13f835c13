"""Shared fixtures: pinned torch threads, a fresh store, and a small numeric data file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


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
