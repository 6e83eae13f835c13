"""The hand-written PyTorch loop that card pipelines must match bit for bit (docs/design.md §2): the standard idiom,
a DataLoader over a TensorDataset of the frame's rows in order, batch by batch."""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}


def build_mlp(input_dim: int, layers: list[int], seed: int = 0, output_dim: int = 1) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    modules: list[torch.nn.Module] = []
    width = input_dim
    for hidden in layers:
        modules += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    modules.append(torch.nn.Linear(width, output_dim))
    return torch.nn.Sequential(*modules)


def hand_written_loop(csv_path, *, batches: int, batch_size: int, layers: list[int], optimizer_type: str = "adam",
                      learning_rate: float = 0.001, weight_decay: float = 0.0, loss_type: str = "mse",
                      gradient_clip: float = 0.0, zero_grad: bool = True, epochs: int = 1, shuffle: bool = False,
                      seed: int = 0, drop_last: bool = False) -> torch.nn.Module:
    """`batches` batches of each of `epochs` passes; shuffled, pass e draws its order from a generator seeded
    with seed + e."""
    frame = pd.read_csv(csv_path)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(X.shape[1], layers)
    optimizer = OPTIMIZERS[optimizer_type](model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(seed + epoch) if shuffle else None
        loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=generator,
                            drop_last=drop_last)
        for i, (xb, yb) in zip(range(batches), loader):
            if zero_grad:
                optimizer.zero_grad()
            loss = LOSSES[loss_type](model(xb), yb)
            loss.backward()
            if gradient_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), gradient_clip)
            optimizer.step()
    return model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name].detach().cpu(), pb[name].detach().cpu()), f"parameter {name} differs"
