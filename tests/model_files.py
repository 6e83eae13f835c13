"""A card file that defines model classes, written fresh for each test: its file name is unique, because card
files stay loaded for the life of the process and a model class is named by its card file's name."""

from __future__ import annotations

import uuid
from pathlib import Path

import torch

NETS = '''
from torch import nn
from torch.nn import Linear  # imported here, not defined here


class Net(nn.Module):
    """Linear, tanh, Linear: `body.0`, then `head`."""

    def __init__(self, input_dim, hidden=8, output_dim=1):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(input_dim, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, output_dim)

    def forward(self, x):
        return self.head(self.body(x))


class Plain:
    pass


def helper():
    return 1
'''


def write_model_file(folder: Path, text: str = NETS) -> Path:
    """A card file `nets_<random>.py` in `folder` defining Net (nn.Module), Plain (a class) and helper."""
    path = folder / f"nets_{uuid.uuid4().hex[:8]}.py"
    path.write_text(text)
    return path


def hand_net_weights(seed: int, input_dim: int, hidden: int = 8, output_dim: int = 1) -> list[torch.Tensor]:
    """Net's weights as plain PyTorch draws them after torch.manual_seed(seed), in Net's parameter order."""
    torch.manual_seed(seed)
    first, last = torch.nn.Linear(input_dim, hidden), torch.nn.Linear(hidden, output_dim)
    return [first.weight, first.bias, last.weight, last.bias]
