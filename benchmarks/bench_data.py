"""The benchmarks' data files: the packaged diabetes data repeated, and seeded synthetic regression data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cardloop.datasets import DATASETS_DIR

SEED = 0


def standardize(frame: pd.DataFrame) -> pd.DataFrame:
    return (frame - frame.mean()) / frame.std(ddof=0)


def write_diabetes(directory: Path, copies: int) -> Path:
    """The packaged diabetes data (10 features), every column standardized, repeated `copies` times, as CSV."""
    frame = standardize(pd.read_csv(DATASETS_DIR / "diabetes.csv").astype("float64"))
    path = directory / f"diabetes_std_x{copies}.csv"
    pd.concat([frame] * copies, ignore_index=True).to_csv(path, index=False)
    return path


def write_synthetic(directory: Path, rows: int, features: int = 32) -> Path:
    """Seeded regression data: N(0,1) features, a smooth nonlinear target, all standardized, as Parquet."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((rows, features))
    w1, w2 = rng.standard_normal(features), rng.standard_normal(features)
    y = np.sin(X @ w1 / np.sqrt(features)) + 0.5 * (X @ w2) / np.sqrt(features) + 0.1 * rng.standard_normal(rows)
    frame = standardize(pd.DataFrame(X, columns=[f"x{i}" for i in range(features)]).assign(target=y))
    path = directory / f"synthetic_{rows}.parquet"
    frame.to_parquet(path)
    return path
