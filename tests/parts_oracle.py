"""The hand-written PyTorch loop for optimizers on parts of a model: any optimizers (one or several, each on the
parameters it was made with), stepped in order after one forward, loss and backward per batch."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def frame_tensors(frame: pd.DataFrame, targets: tuple[str, ...] = ("target",)) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (every other column) and targets of a frame as float32 tensors."""
    X = torch.tensor(frame.drop(columns=list(targets)).values, dtype=torch.float32)
    y = torch.tensor(frame[list(targets)].values, dtype=torch.float32)
    return X, y


def train_by_hand(X: torch.Tensor, y: torch.Tensor, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer],
                  *, batch_size: int, batches: int | None = None, epochs: int = 1, shuffle: bool = False,
                  seed: int = 0, before_batch: Callable[[int], None] | None = None) -> torch.nn.Module:
    """`epochs` passes of (the first `batches`) batches: every optimizer's zero_grad, forward, MSE, backward, every
    optimizer's step. Shuffled, pass e draws its order from a generator seeded with seed + e. `before_batch(i)`
    runs before the i-th batch of the whole run (freezing by hand)."""
    step = 0
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(seed + epoch) if shuffle else None
        loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=generator)
        for _, (xb, yb) in zip(range(len(loader) if batches is None else batches), loader):
            if before_batch is not None:
                before_batch(step)
            for optimizer in optimizers:
                optimizer.zero_grad()
            F.mse_loss(model(xb), yb).backward()
            for optimizer in optimizers:
                optimizer.step()
            step += 1
    return model
