"""Cards that make models: `model_define` (the guide's "Model Define (GPU)") and `model_clone`.

`model_define` builds the guide's MLP, a small 1-D or 2-D CNN (`architecture`), or a user's nn.Module class of a
loaded card file or card pack (`module`, cardloop.model_modules); each is tagged with the recipe that rebuilds it
(cardloop.models), so the store keeps weights and recipe and never pickles a model.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from cardloop.cards.bounds import MAX_INT64, MAX_SEED, MIN_SEED
from cardloop.cards.spec import CardConfig, NoConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import MODEL
from cardloop.model_modules import ModuleRuleError, code_file, find_source
from cardloop.models import conv_output_shape


def resolve_device(device: str) -> str:
    """`auto` means CUDA when present, else CPU (docs/design.md §6)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CardError("config field 'device' is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return device


def clone_model(model):  # defined before the cards: their registration imports best_model, which imports it
    """An independent copy of `model`: weights, gradients, buffers, train/eval flags and its recipe."""
    clone = copy.deepcopy(model)  # deepcopy of a Parameter leaves its .grad behind
    for original, copied in zip(model.parameters(), clone.parameters()):
        copied.grad = None if original.grad is None else original.grad.detach().clone()
    return clone


PositiveInt = Annotated[int, Field(gt=0, le=MAX_INT64)]
CNN_DEFAULTS: dict[str, Any] = {"channels": [16, 32], "kernel_size": 3, "pool": "max"}
MODULE_FREE = {"layers": [64, 64], "activation": "relu", "output_dim": 1, "dropout": 0.0}  # not for a module
CNN_DIMS = {"cnn1d": 1, "cnn2d": 2}


class ModelDefineConfig(CardConfig):
    input_dim: int = Field(gt=0, le=MAX_INT64, description="Number of input features.")
    layers: list[PositiveInt] = Field(default=[64, 64], description="Hidden layer sizes, in order (a CNN: its "
                                                                     "head's, after the convolutions).")
    activation: Literal["relu", "tanh", "gelu", "sigmoid"] = "relu"
    output_dim: int = Field(default=1, gt=0, le=MAX_INT64, description="Number of outputs (targets).")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout after each activation; 0 = none.")
    seed: int = Field(default=0, ge=MIN_SEED, le=MAX_SEED,
                      description="torch.manual_seed applied right before the layers are built.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    architecture: Literal["mlp", "cnn1d", "cnn2d"] = Field(
        default="mlp", description="mlp (the default), or a 1-D or 2-D convolutional network over input_shape.")
    input_shape: list[PositiveInt] | None = Field(
        default=None, validate_default=True,
        description="CNN: how a row's input_dim features are read, [channels, length] (cnn1d; default "
                    "[1, input_dim]) or [channels, height, width] (cnn2d, required); their product is input_dim.")
    channels: Annotated[list[PositiveInt], Field(min_length=1)] | None = Field(
        default=None, validate_default=True, description="CNN: output channels of each convolution (default [16, 32]).")
    kernel_size: int | None = Field(default=None, gt=0, le=MAX_INT64, validate_default=True,
                                    description="CNN: kernel size of every convolution: odd, 'same' padding "
                                                "(default 3).")
    pool: Literal["max", "avg", "none"] | None = Field(
        default=None, validate_default=True, description="CNN: pooling by 2 after each convolution (default max).")
    module: str | None = Field(
        default=None, description="Instead of an architecture: an nn.Module class of a loaded card file or an "
                                  "installed card pack, as 'name:Class' (e.g. 'my_models:Net' for class Net of "
                                  "my_models.py).")
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="module: the keyword arguments its class is called with (JSON).")

    @field_validator("input_shape")
    @classmethod
    def _input_shape(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        architecture, input_dim = info.data.get("architecture", "mlp"), info.data.get("input_dim")
        if architecture not in CNN_DIMS:
            return _cnn_only(value)
        dims = CNN_DIMS[architecture]
        if value is None:
            if dims == 2:
                raise ValueError("architecture cnn2d needs it: [channels, height, width] whose product is input_dim, "
                                 "e.g. [1, 8, 8] for 64 pixel columns")
            return None if input_dim is None else [1, input_dim]
        if len(value) != dims + 1:
            sizes = "[channels, length]" if dims == 1 else "[channels, height, width]"
            raise ValueError(f"architecture {architecture} reads {sizes}, {dims + 1} sizes, not {len(value)}")
        if input_dim is not None and math.prod(value) != input_dim:
            raise ValueError(f"its product {math.prod(value)} must equal input_dim ({input_dim}), the number of "
                             "feature columns of a batch")
        return value

    @field_validator("channels", "kernel_size")
    @classmethod
    def _cnn_setting(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("architecture", "mlp") not in CNN_DIMS:
            return _cnn_only(value)
        if value is None:
            return copy.deepcopy(CNN_DEFAULTS[info.field_name])
        if info.field_name == "kernel_size" and value % 2 == 0:
            raise ValueError("must be odd, so that the 'same' padding keeps the sizes")
        return value

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Also checks that the pooled convolutions leave every spatial size at least 1."""
        if info.data.get("architecture", "mlp") not in CNN_DIMS:
            return _cnn_only(value)
        value = value or CNN_DEFAULTS["pool"]
        shape, channels = info.data.get("input_shape"), info.data.get("channels")
        if shape and channels and min(conv_output_shape(shape, channels, value)[1:]) < 1:
            raise ValueError(f"{len(channels)} convolutions each pooled by 2 leave input_shape {shape} no "
                             f"positions ({conv_output_shape(shape, channels, value)[1:]}); use fewer channels or "
                             "pool: none")
        return value

    @field_validator("module")
    @classmethod
    def _module(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("architecture", "mlp") != "mlp":
            raise ValueError("replaces architecture: a module is built by its class alone; leave architecture out")
        changed = [name for name, default in MODULE_FREE.items() if info.data.get(name, default) != default]
        if changed:
            raise ValueError(f"is built by its class alone: config field(s) {', '.join(changed)} do not apply to it; "
                             "give the class its sizes in kwargs")
        find_source(value)
        return value

    @field_validator("kwargs")
    @classmethod
    def _kwargs(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "module" in info.data and info.data["module"] is None and value:
            raise ValueError("applies only with config field 'module' (the class it is passed to)")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"must be JSON (it is stored with the model): {error}") from None
        return value


def _cnn_only(value: Any) -> None:
    """A CNN setting on a model that is no CNN: refused when given, and kept empty."""
    if value is not None:
        raise ValueError("applies only to architecture cnn1d or cnn2d")
    return None


def _class_files(config: ModelDefineConfig) -> list[str]:
    """The file that defines a `module` class (a card file, or a card pack's module): it enters the cache key."""
    found = code_file(config.module) if config.module is not None else None
    return [found] if found else []


@card(
    "model_define",
    title="Model Define (GPU)",
    category="model",
    description="Build an MLP (Linear, activation, dropout per hidden layer, then Linear), a 1-D or 2-D CNN, or an "
                "nn.Module class of a loaded card file or card pack, right after torch.manual_seed(seed), on the "
                "chosen device.",
    outputs=[Port("model", MODEL, "The new model (training state).")],
    config=ModelDefineConfig,
    resources={"gpu": 1},
    code_files=_class_files,
)
def model_define(config: ModelDefineConfig) -> dict:
    import torch

    from cardloop.models import build_model

    device = resolve_device(config.device)
    try:
        recipe = architecture_of_config(config)
        torch.manual_seed(config.seed)
        model = build_model(recipe)
    except ModuleRuleError as error:
        raise CardError(str(error)) from None
    return {"model": model.to(device)}


def architecture_of_config(config: ModelDefineConfig) -> dict[str, Any]:
    """The recipe `cardloop.models.build_model` builds the configured model from (and a stored model is rebuilt
    from): only the fields that shape it."""
    if config.module is not None:
        return {"name": "module", "config": {"module": config.module, "kwargs": copy.deepcopy(config.kwargs),
                                             "source": find_source(config.module).record()}}
    head = {"layers": list(config.layers), "activation": config.activation, "output_dim": config.output_dim,
            "dropout": config.dropout}
    if config.architecture == "mlp":
        return {"name": "mlp", "config": {"input_dim": config.input_dim, **head}}
    return {"name": config.architecture, "config": {
        "input_shape": list(config.input_shape or ()), "channels": list(config.channels or ()),
        "kernel_size": config.kernel_size, "pool": config.pool, **head}}


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

