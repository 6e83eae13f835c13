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


@register_architecture("mlp")
def build_mlp(config: dict[str, Any]) -> Any:
    """Linear, activation (and dropout) layers in that order, then a final Linear to `output_dim`."""
    import torch.nn as nn

    activation = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[config["activation"]]
    layers: list[nn.Module] = []
    width = config["input_dim"]
    for hidden in config["layers"]:
        layers += [nn.Linear(width, hidden), activation()]
        if config.get("dropout", 0.0) > 0:
            layers.append(nn.Dropout(config["dropout"]))
        width = hidden
    layers.append(nn.Linear(width, config.get("output_dim", 1)))
    return nn.Sequential(*layers)


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
