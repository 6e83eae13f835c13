"""Shared helpers for the store tests: small models and a few training steps."""

from __future__ import annotations

import pytest
import torch

from cardloop.models import build_model


def _make_mlp(seed: int = 0, input_dim: int = 4, layers: tuple[int, ...] = (8, 8)) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({"name": "mlp", "config": {"input_dim": input_dim, "layers": list(layers),
                                                  "activation": "tanh"}})


def _train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        X = torch.randn(16, 4, generator=generator)
        y = torch.randn(16, 1, generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(X), y).backward()
        optimizer.step()


@pytest.fixture
def make_mlp():
    """`make_mlp(seed=0, input_dim=4, layers=(8, 8))`: a seeded tanh MLP with a recipe."""
    return _make_mlp


@pytest.fixture
def train_steps():
    """`train_steps(model, optimizer, steps, seed=1)`: MSE steps on seeded random batches of 16 rows."""
    return _train_steps
