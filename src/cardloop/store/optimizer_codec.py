"""The `optimizer` codec: type, hyperparameters and state, keyed by the bound model's parameter names, and the
card that made it (cardloop.model_parts: which optimizer trains which parameters).

`Optimizer.load_state_dict` pairs parameters by position and checks only group sizes, so a state loaded
into another model's optimizer would be silently misapplied. The artifact records each parameter's name
and shape, and decoding checks them against the model in the context. No pickle: tensors go to
safetensors, everything else to JSON.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from cardloop import kinds
from cardloop.errors import StoreError
from cardloop.model_parts import TRAINER_CARD_ATTR, record_trainer
from cardloop.store import safetensors_format
from cardloop.store.codec import Codec, CodecContext
from cardloop.store.json_codecs import to_jsonable
from cardloop.store.stored_summaries import OPTIMIZER_CODEC, TENSOR_TAG, TUPLE_TAG, summarize_optimizer_bytes

from cardloop.values import OPTIMIZER_STEPS_ATTR as STEPS_ATTR



class OptimizerCodec(Codec):
    """A `torch.optim` optimizer bound to `ctx.model`; decoding builds a new one over `ctx.model`'s parameters."""

    name = OPTIMIZER_CODEC
    kind = kinds.OPTIMIZER
    extension = "safetensors"
    format = "cardloop.optimizer/1"

    def encode(self, value: torch.optim.Optimizer, ctx: CodecContext) -> bytes:
        model = _bound_model(ctx, "store")
        check_rebuildable(value)
        names = parameter_names(value, model)
        state_dict = value.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        groups = []
        for index, group in enumerate(state_dict["param_groups"]):
            hyperparameters = {k: v for k, v in group.items() if k not in ("params", "param_names")}
            groups.append({
                "params": [{"name": names[i], "shape": list(model.get_parameter(names[i]).shape)}
                           for i in group["params"]],
                "named": "param_names" in group,
                "hyperparameters": pack_state(hyperparameters, f"groups/{index}", tensors),
            })
        state = {names[i]: pack_state(entry, f"state/{names[i]}", tensors) for i, entry in state_dict["state"].items()}
        metadata = {"format": self.format, "type": type(value).__name__, "groups": groups, "state": state,
                    "defaults": pack_state(value.defaults, "defaults", tensors),
                    "steps": getattr(value, STEPS_ATTR, 0)}
        if hasattr(value, TRAINER_CARD_ATTR):  # the card that made it: which parts of the model it trains
            metadata["card"] = getattr(value, TRAINER_CARD_ATTR)
        return safetensors_format.pack(tensors, metadata)

    def decode(self, data: bytes, ctx: CodecContext) -> torch.optim.Optimizer:
        model = _bound_model(ctx, "load")
        tensors, metadata = safetensors_format.unpack(data, self.format)
        cls = _optimizer_class(metadata["type"])
        parameters = dict(model.named_parameters())
        groups, saved_groups = [], []
        names: list[str] = []  # every optimized parameter, in state_dict() index order
        for group in metadata["groups"]:
            for entry in group["params"]:
                _check_parameter(parameters, entry["name"], entry["shape"])
            group_names = [entry["name"] for entry in group["params"]]
            hyperparameters = unpack_state(group["hyperparameters"], tensors)
            saved = {**hyperparameters, "params": list(range(len(names), len(names) + len(group_names)))}
            params: list[Any] = [parameters[n] for n in group_names]
            if group["named"]:
                saved["param_names"] = group_names
                params = list(zip(group_names, params))
            saved_groups.append(saved)
            groups.append({**hyperparameters, "params": params})
            names.extend(group_names)
        state = {i: unpack_state(metadata["state"][n], tensors) for i, n in enumerate(names) if n in metadata["state"]}
        optimizer = _construct(cls, groups, unpack_state(metadata["defaults"], tensors))
        optimizer.load_state_dict({"state": state, "param_groups": saved_groups})
        if metadata.get("steps"):
            setattr(optimizer, STEPS_ATTR, metadata["steps"])
        if metadata.get("card"):
            record_trainer(model, optimizer, metadata["card"])
        return optimizer

    def summarize(self, value: torch.optim.Optimizer) -> dict[str, Any]:
        groups = [{"parameters": len(g["params"]),
                   **to_jsonable({k: v for k, v in g.items() if k not in ("params", "param_names")}, "group")}
                  for g in value.param_groups]
        return {"type": type(value).__name__, "groups": groups, "parameters_with_state": len(value.state)}

    def summarize_stored(self, data: bytes, ctx: CodecContext) -> dict[str, Any]:
        """`summarize` read from the bytes, without the bound model or building the optimizer (the first one built
        in a process imports torch._dynamo: seconds)."""
        tensors, _ = safetensors_format.unpack(data, self.format)
        return summarize_optimizer_bytes(data, lambda name: to_jsonable(tensors[name], "group"))

    def accepts(self, value: Any) -> bool:
        return isinstance(value, torch.optim.Optimizer)


def check_rebuildable(optimizer: torch.optim.Optimizer) -> None:
    """StoreError unless the optimizer is one of torch.optim's, the only ones decoding can rebuild."""
    if _optimizer_class(type(optimizer).__name__) is not type(optimizer):
        raise StoreError(f"optimizer type {type(optimizer).__qualname__} is not torch.optim's "
                         f"{type(optimizer).__name__}, so it cannot be rebuilt")


def _bound_model(ctx: CodecContext, action: str) -> nn.Module:
    if ctx.model is None:
        raise StoreError(f"cannot {action} an optimizer without the model it is bound to (CodecContext.model)")
    return ctx.model


def _optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise StoreError(f"optimizer type '{name}' is not one of torch.optim's, so it cannot be stored or rebuilt")
    return cls


def _construct(cls: type[torch.optim.Optimizer], groups: list[dict[str, Any]],
               defaults: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer built as it was: its defaults passed to the constructor where it takes them."""
    accepted = inspect.signature(cls.__init__).parameters
    optimizer = cls(groups, **{k: v for k, v in defaults.items() if k in accepted})
    optimizer.defaults = defaults
    return optimizer


def parameter_names(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[str]:
    """The model's name of each optimized parameter, in `state_dict()` index order."""
    by_identity = {id(p): name for name, p in model.named_parameters()}
    names = []
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            if id(parameter) not in by_identity:
                raise StoreError(f"the optimizer holds a parameter of shape {list(parameter.shape)} "
                                 "that is not in the model it is stored with")
            names.append(by_identity[id(parameter)])
    return names


def _check_parameter(parameters: dict[str, nn.Parameter], name: str, shape: list[int]) -> None:
    if name not in parameters:
        raise StoreError(f"the stored optimizer works on parameter '{name}', which the model does not have")
    if list(parameters[name].shape) != shape:
        raise StoreError(f"parameter '{name}' has shape {list(parameters[name].shape)} in the model "
                         f"but {shape} in the stored optimizer")


def pack_state(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON for a nested value; tensors move to `tensors` under their path, tuples are tagged."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value
        return {TENSOR_TAG: path}
    if isinstance(value, tuple):
        return {TUPLE_TAG: [pack_state(item, f"{path}/{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [pack_state(item, f"{path}/{i}", tensors) for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise StoreError(f"optimizer entry '{path}' has the key {key!r}: JSON keys must be strings")
        return {key: pack_state(item, f"{path}/{key}", tensors) for key, item in value.items()}
    return to_jsonable(value, path)


def unpack_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The nested value `pack_state` described."""
    if isinstance(value, list):
        return [unpack_state(item, tensors) for item in value]
    if isinstance(value, dict):
        if set(value) == {TENSOR_TAG}:
            return tensors[value[TENSOR_TAG]]
        if set(value) == {TUPLE_TAG}:
            return tuple(unpack_state(item, tensors) for item in value[TUPLE_TAG])
        return {key: unpack_state(item, tensors) for key, item in value.items()}
    return value
