"""Cards that make models: `model_define` (the guide's "Model Define (GPU)") and `model_clone`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cardloop.cards.bounds import MAX_INT64, MAX_SEED, MIN_SEED
from cardloop.cards.spec import CardConfig, NoConfig, Port, card
from cardloop.kinds import MODEL


def resolve_device(device: str) -> str:
    """`auto` means CUDA when present, else CPU (docs/design.md §6)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from cardloop.errors import CardError

        raise CardError("config field 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return device


class ModelDefineConfig(CardConfig):
    input_dim: int = Field(gt=0, le=MAX_INT64, description="Number of input features.")
    layers: list[Annotated[int, Field(gt=0, le=MAX_INT64)]] = Field(default=[64, 64],
                                                                    description="Hidden layer sizes, in order.")
    activation: Literal["relu", "tanh", "gelu", "sigmoid"] = "relu"
    output_dim: int = Field(default=1, gt=0, le=MAX_INT64, description="Number of outputs (targets).")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout after each activation; 0 = none.")
    seed: int = Field(default=0, ge=MIN_SEED, le=MAX_SEED,
                      description="torch.manual_seed applied right before the layers are built.")
    device: Literal["auto", "cpu", "cuda"] = "auto"


@card(
    "model_define",
    title="Model Define (GPU)",
    category="model",
    description="Build an MLP (Linear, activation, dropout per hidden layer, then Linear) right after "
                "torch.manual_seed(seed), on the chosen device.",
    outputs=[Port("model", MODEL, "The new model (training state).")],
    config=ModelDefineConfig,
    resources={"gpu": 1},
)
def model_define(config: ModelDefineConfig) -> dict:
    import torch

    from cardloop.models import build_model

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    architecture = {
        "input_dim": config.input_dim, "layers": list(config.layers), "activation": config.activation,
        "output_dim": config.output_dim, "dropout": config.dropout,
    }
    model = build_model({"name": "mlp", "config": architecture})
    return {"model": model.to(device)}


@card(
    "model_clone",
    title="Clone Model",
    category="model",
    description="An independent copy of a model (weights, gradients, buffers), for a second line of training.",
    inputs=[Port("model", MODEL, "The model to copy.")],
    outputs=[Port("model", MODEL, "The copy: a new training state.")],
    config=NoConfig,
)
def model_clone(config: NoConfig, model) -> dict:
    return {"model": clone_model(model)}


def clone_model(model):
    """An independent copy of `model`: weights, gradients, buffers, train/eval flags and its recipe."""
    import copy

    clone = copy.deepcopy(model)  # deepcopy of a Parameter leaves its .grad behind
    for original, copied in zip(model.parameters(), clone.parameters()):
        copied.grad = None if original.grad is None else original.grad.detach().clone()
    return clone
