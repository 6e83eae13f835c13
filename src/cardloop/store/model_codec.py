"""The `model` codec: weights, buffers and gradients as safetensors, the architecture recipe as JSON.

Nothing is unpickled: the module is rebuilt from its recipe (`cardloop.models.build_model`) and the
tensors are loaded into it. Everything is stored from CPU and moved to the context's device on load.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cardloop import kinds
from cardloop.errors import RegistryError, StoreError
from cardloop.models import architecture_of, build_model, model_device
from cardloop.store import safetensors_format
from cardloop.store.codec import Codec, CodecContext, canonical_json, json_number, load_device
from cardloop.store.stored_summaries import GRAD_PREFIX, MODEL_CODEC, STATE_PREFIX

FITTING_CACHE = 64

_fitting: dict[tuple, None] = {}  # (recipe JSON, stored names and shapes) that were checked to fit


class ModelCodec(Codec):
    """A module's `state_dict()`, its parameters' gradients, its recipe, train/eval flags and frozen parameters."""

    name = MODEL_CODEC
    kind = kinds.MODEL
    extension = "safetensors"
    format = "cardloop.model/1"

    def encode(self, value: nn.Module, ctx: CodecContext) -> bytes:
        architecture = recipe_of(value)
        tensors = {STATE_PREFIX + name: _state_tensor(name, t) for name, t in value.state_dict().items()}
        parameters = dict(value.named_parameters())
        tensors.update({GRAD_PREFIX + name: p.grad for name, p in parameters.items() if p.grad is not None})
        metadata = {
            "format": self.format,
            "architecture": architecture,
            "eval_modules": [name for name, m in value.named_modules() if not m.training],
            "frozen": [name for name, p in parameters.items() if not p.requires_grad],
            "parameters": list(parameters),  # which stored tensors are parameters: a summary reads them without torch
            "device": model_device(value).type,
        }
        return safetensors_format.pack(tensors, metadata)

    def decode(self, data: bytes, ctx: CodecContext) -> nn.Module:
        tensors, metadata = safetensors_format.unpack(data, self.format)
        state = _with_prefix(tensors, STATE_PREFIX)
        module = _rebuilt(metadata.get("architecture"), state)
        _match_dtypes(module, state)
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise StoreError(f"the stored weights do not fit the rebuilt model: {error}") from error
        parameters = dict(module.named_parameters())
        for name, grad in _with_prefix(tensors, GRAD_PREFIX).items():
            _known(parameters, name, "a gradient")
            parameters[name].grad = grad
        for name in metadata.get("frozen", ()):  # a model stored without the list had every parameter trainable
            _known(parameters, name, "a frozen parameter")
            parameters[name].requires_grad_(False)
        module.to(load_device(ctx.device, metadata.get("device")))
        module.train()
        modules = dict(module.named_modules())
        for name in metadata["eval_modules"]:
            _known(modules, name, "a module in eval mode")
            modules[name].training = False
        return module

    def summarize(self, value: nn.Module) -> dict[str, Any]:
        parameters = dict(value.named_parameters())
        return {
            "architecture": architecture_of(value),
            "parameters": sum(p.numel() for p in parameters.values()),
            "trainable": sum(p.numel() for p in parameters.values() if p.requires_grad),
            "training": value.training,
            "has_gradients": any(p.grad is not None for p in parameters.values()),
            "tensors": {name: _describe(p) for name, p in parameters.items()},
        }

    def accepts(self, value: Any) -> bool:
        return isinstance(value, nn.Module)


def _rebuilt(architecture: Any, state: dict[str, torch.Tensor]) -> nn.Module:
    """The module the recipe builds, once the recipe is known to fit the stored weights: it is first built on
    torch's meta device, which allocates nothing, so a recipe can never allocate more than its weights say."""
    if not isinstance(architecture, dict):
        raise StoreError("the stored model has no architecture recipe")
    try:
        fitted = (canonical_json(architecture), tuple(sorted((name, tuple(t.shape)) for name, t in state.items())))
        if fitted not in _fitting:  # a meta build costs a few real ones: a recipe that fitted its weights once
            with torch.device("meta"):  # fits them again (builders are deterministic)
                _check_fits(build_model(architecture), state)
            if len(_fitting) >= FITTING_CACHE:
                _fitting.pop(next(iter(_fitting)))
            _fitting[fitted] = None
        return build_model(architecture)
    except (KeyError, TypeError, ValueError, RegistryError) as error:
        raise StoreError(f"the stored model cannot be rebuilt: {error.args[0] if error.args else error}") from error


def _check_fits(probe: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """The recipe's tensors are the stored ones (names and shapes), and what it adds that is not stored
    (buffers kept out of the state dict) is no larger than the stored weights."""
    built = probe.state_dict()
    if built.keys() != state.keys():
        missing, unexpected = sorted(built.keys() - state.keys()), sorted(state.keys() - built.keys())
        raise StoreError(f"the stored weights do not fit the model the recipe builds: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for name, tensor in built.items():
        if tensor.shape != state[name].shape:
            raise StoreError(f"the stored weights do not fit the model the recipe builds: '{name}' has shape "
                             f"{list(state[name].shape)} stored but {list(tensor.shape)} in the recipe's model")
    stored = sum(t.numel() for t in state.values())
    allocated = sum(t.numel() for t in (*probe.parameters(), *probe.buffers()))
    if allocated > 2 * stored:
        raise StoreError(f"the stored recipe would build a model of {allocated:,} elements for {stored:,} stored "
                         f"ones (at most twice as many are allowed)")


def _known(found: dict[str, Any], name: str, what: str) -> None:
    if name not in found:
        raise StoreError(f"the stored model names {what} '{name}', which the rebuilt model does not have")


def recipe_of(module: nn.Module) -> dict[str, Any]:
    """The module's architecture recipe, which storing it needs; StoreError saying how to give it one if it
    has none, or one that is not JSON-able."""
    architecture = architecture_of(module)
    if architecture is None:
        raise StoreError(
            f"a {type(module).__name__} without an architecture recipe cannot be stored: register a builder "
            "with cardloop.models.register_architecture and tag the module with cardloop.models.set_architecture"
        )
    try:
        canonical_json(architecture)
    except (TypeError, ValueError) as error:
        raise StoreError(f"the model's architecture recipe is not JSON-able: {error}") from error
    return architecture


def _state_tensor(name: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise StoreError(f"the model's state entry '{name}' is a {type(value).__name__}, not a tensor")
    return value


def _with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


def _match_dtypes(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Give the rebuilt module's tensors the stored dtypes (`load_state_dict` would cast to the built ones)."""
    for name, current in module.state_dict(keep_vars=True).items():
        if name in state and current.dtype != state[name].dtype:
            current.data = current.data.to(state[name].dtype)


def _describe(parameter: nn.Parameter) -> dict[str, Any]:
    grad = parameter.grad
    return {
        "shape": list(parameter.shape),
        "dtype": str(parameter.dtype).removeprefix("torch."),
        "norm": json_number(parameter.detach().double().norm()),
        "grad_norm": json_number(grad.detach().double().norm()) if grad is not None else None,
    }
