"""Small classification tables for the tests of losses and metrics, and the hand-written PyTorch pieces they are
compared with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

FEATURES = ["a", "b", "c", "d"]


def classification_frame(rows: int = 60, classes: int = 3, seed: int = 3) -> pd.DataFrame:
    """`rows` rows of 4 standard normal features and an integer `target` 0..classes-1 that depends on them."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, len(FEATURES)))
    scores = X @ rng.standard_normal((len(FEATURES), classes)) + 0.3 * rng.standard_normal((rows, classes))
    frame = pd.DataFrame(X, columns=FEATURES).assign(target=scores.argmax(axis=1))
    frame.attrs["target_columns"] = ["target"]
    return frame


def classification_csv(directory: Path, **options) -> Path:
    path = directory / "classes.csv"
    classification_frame(**options).to_csv(path, index=False)
    return path


def tensors(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """X (float32, rows x features) and the float32 target column (rows x 1), as the batches carry them."""
    X = torch.tensor(frame[FEATURES].to_numpy(dtype=np.float32))
    y = torch.tensor(frame[["target"]].to_numpy(dtype=np.float32))
    return X, y
