"""The hand-written PyTorch gradient accumulation loop that the accumulating pipelines must match bit for bit: a
DataLoader per epoch, each batch's loss times 1/k back-propagated, and clipping, a step and zero_grad after every
k batches and after an epoch's last batch (the leftover window, its losses still times 1/k)."""

from __future__ import annotations

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from tests.oracle import LOSSES, OPTIMIZERS, build_mlp


def frame_tensors(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and the `target` column of a frame as float32 tensors."""
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    return X, y


def hand_accumulation_loop(data, *, accumulate: int, batch_size: int, layers: list[int], epochs: int = 1,
                           optimizer_type: str = "adam", learning_rate: float = 0.001, loss_type: str = "mse",
                           gradient_clip: float = 0.0, shuffle: bool = False, seed: int = 0,
                           drop_last: bool = False) -> tuple[torch.nn.Module, list[float], int]:
    """The model after training, every batch's unscaled loss, and the number of optimizer steps; `data`: a CSV
    file's path or a frame."""
    X, y = frame_tensors(data if isinstance(data, pd.DataFrame) else pd.read_csv(data))
    model = build_mlp(X.shape[1], layers)
    optimizer = OPTIMIZERS[optimizer_type](model.parameters(), lr=learning_rate)
    losses, steps = [], 0
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(seed + epoch) if shuffle else None
        loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=generator,
                            drop_last=drop_last)
        for i, (xb, yb) in enumerate(loader):
            loss = LOSSES[loss_type](model(xb), yb)
            losses.append(loss.item())
            (loss * (1 / accumulate)).backward()
            if (i + 1) % accumulate == 0 or i + 1 == len(loader):
                if gradient_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), gradient_clip)
                optimizer.step()
                optimizer.zero_grad()
                steps += 1
    return model, losses, steps
