"""Model architectures that can be rebuilt from a JSON recipe, so a stored model needs no pickle.

A card that builds a model tags it with `set_architecture(module, name, config)`; the model codec
stores that recipe beside the weights and calls `build_model` to rebuild it on load.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any, Callable

from cardloop.errors import RegistryError

ARCHITECTURE_ATTR = "_cardloop_architecture"

_builders: dict[str, Callable[[dict[str, Any]], Any]] = {}


def register_architecture(name: str) -> Callable:
    """Register a builder `config dict -> torch.nn.Module` under `name`."""

    def decorate(builder: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        _builders[name] = builder
        return builder

    return decorate


def set_architecture(module: Any, name: str, config: dict[str, Any]) -> None:
    setattr(module, ARCHITECTURE_ATTR, {"name": name, "config": config})


def architecture_of(module: Any) -> dict[str, Any] | None:
    return getattr(module, ARCHITECTURE_ATTR, None)


def build_model(architecture: dict[str, Any]) -> Any:
    """Rebuild an untrained module from its recipe (weights are loaded separately)."""
    name = architecture.get("name")
    if name not in _builders:
        known = ", ".join(sorted(_builders)) or "none"
        raise RegistryError(f"no model architecture named '{name}' is registered (known: {known}); "
                            "register it with cardloop.models.register_architecture")
    config = copy.deepcopy(architecture["config"])
    module = _builders[name](config)
    set_architecture(module, name, copy.deepcopy(config))
    return module


ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")
POOL_SIZE = 2  # each pooled convolution halves the spatial sizes (rounding down)


@register_architecture("mlp")
def build_mlp(config: dict[str, Any]) -> Any:
    """Linear, activation (and dropout) layers in that order, then a final Linear to `output_dim`."""
    import torch.nn as nn

    return nn.Sequential(*_dense_layers(config["input_dim"], config))


def _dense_layers(width: int, config: dict[str, Any]) -> list[Any]:
    """Linear, activation (and dropout) per size in `layers`, then a Linear from the last width to `output_dim`."""
    import torch.nn as nn

    layers: list[nn.Module] = []
    for hidden in config["layers"]:
        layers += [nn.Linear(width, hidden), _activation(config["activation"])]
        if config.get("dropout", 0.0) > 0:
            layers.append(nn.Dropout(config["dropout"]))
        width = hidden
    layers.append(nn.Linear(width, config.get("output_dim", 1)))
    return layers


def _activation(name: str) -> Any:
    import torch.nn as nn

    return {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[name]()


def conv_output_shape(input_shape: list[int], channels: list[int], pool: str) -> list[int]:
    """[channels, *spatial sizes] after the convolutions: each keeps the spatial sizes ('same' padding of an odd
    kernel), each pooling halves them, rounding down. Torch-free, so a config can check a shape before building."""
    spatial = list(input_shape[1:])
    if pool != "none":
        for _ in channels:
            spatial = [size // POOL_SIZE for size in spatial]
    return [channels[-1] if channels else input_shape[0], *spatial]


def _build_cnn(config: dict[str, Any], dims: int) -> Any:
    """Unflatten the (N, features) batch to (N, *input_shape); per entry of `channels` a convolution ('same'
    padding), the activation, pooling by 2 (unless `pool: none`) and dropout (when > 0); then Flatten and the
    MLP's dense layers (`layers`, `output_dim`)."""
    import math

    import torch.nn as nn

    conv = (nn.Conv1d, nn.Conv2d)[dims - 1]
    pool = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}.get(config["pool"])
    shape, kernel = list(config["input_shape"]), config["kernel_size"]
    if len(shape) != dims + 1:
        raise ValueError(f"input_shape {shape} has {len(shape)} sizes; a {dims}-D convolution reads {dims + 1}")
    layers: list[nn.Module] = [nn.Unflatten(1, tuple(shape))]
    width = shape[0]
    for out in config["channels"]:
        layers += [conv(width, out, kernel, padding=kernel // 2), _activation(config["activation"])]
        if pool is not None:
            layers.append(pool[dims - 1](POOL_SIZE))
        if config.get("dropout", 0.0) > 0:
            layers.append(nn.Dropout(config["dropout"]))
        width = out
    layers.append(nn.Flatten())
    features = math.prod(conv_output_shape(shape, config["channels"], config["pool"]))
    return nn.Sequential(*layers, *_dense_layers(features, config))


@register_architecture("cnn1d")
def build_cnn1d(config: dict[str, Any]) -> Any:
    """A 1-D convolutional network over `input_shape` [channels, length] (see `_build_cnn`)."""
    return _build_cnn(config, 1)


@register_architecture("cnn2d")
def build_cnn2d(config: dict[str, Any]) -> Any:
    """A 2-D convolutional network over `input_shape` [channels, height, width] (see `_build_cnn`)."""
    return _build_cnn(config, 2)


@register_architecture("module")
def build_module(config: dict[str, Any]) -> Any:
    """An nn.Module class of a loaded card file or an installed card pack, `module: "name:Class"`, called with
    `kwargs` (cardloop.model_modules says which classes qualify)."""
    from cardloop.model_modules import build_user_module

    return build_user_module(config["module"], config.get("kwargs", {}), config.get("source"))


_device_probes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_device(model: Any) -> Any:
    """The device of the model's first parameter or buffer (CPU for a model with neither). That tensor is
    remembered per model: moving a model (`.to`) moves its tensors in place, so it keeps telling."""
    probe = _device_probes.get(model)
    if probe is None:
        probe = next(model.parameters(), None)
        if probe is None:
            probe = next(model.buffers(), None)
        if probe is None:
            import torch

            return torch.device("cpu")
        _device_probes[model] = probe
    return probe.device
