"""The `scheduler` codec: a learning-rate scheduler's recipe and `state_dict`, bound to its optimizer.

A scheduler acts on an optimizer's parameter groups, so it is stored with a description of that optimizer (its
type and, per parameter group, the names of the model's parameters in it) and decoded over an optimizer given
in the context, which must fit that description: a scheduler decoded over another optimizer is a StoreError,
not a schedule silently applied to the wrong groups. Decoding builds the scheduler from its recipe
(`cardloop.schedulers`), loads its state, then puts back the optimizer's hyperparameters as they were, since
torch's constructors change them (the learning rate of step 0, OneCycleLR's momentum). No pickle: tensors go to
safetensors, everything else to JSON (a MultiStepLR's milestones, a Counter, as tagged pairs).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from cardloop import kinds
from cardloop.errors import StoreError
from cardloop.schedulers import build_scheduler, recipe_of
from cardloop.store import safetensors_format
from cardloop.store.codec import Codec, CodecContext
from cardloop.store.json_codecs import to_jsonable
from cardloop.store.optimizer_codec import pack_state, parameter_names, unpack_state
from cardloop.store.stored_summaries import SCHEDULER_CODEC, summarize_scheduler_bytes

COUNTER_TAG = "__counter__"


class SchedulerCodec(Codec):
    """A `torch.optim.lr_scheduler` scheduler built by `cardloop.schedulers.build_scheduler`, over the optimizer
    `ctx.optimizer` of the model `ctx.model`."""

    name = SCHEDULER_CODEC
    kind = kinds.SCHEDULER
    extension = "safetensors"
    format = "cardloop.scheduler/1"

    def encode(self, value: Any, ctx: CodecContext) -> bytes:
        recipe = check_storable(value)
        if ctx.optimizer is not None and ctx.optimizer is not value.optimizer:
            raise StoreError("the scheduler is bound to another optimizer than the one it is stored with")
        model = _needed(ctx.model, "store", "model", "CodecContext.model")
        tensors: dict[str, torch.Tensor] = {}
        metadata = {"format": self.format, "type": type(value).__name__, "recipe": recipe,
                    "optimizer": _binding(value.optimizer, model),
                    "state": pack_state(_tagged(value.state_dict()), "state", tensors)}
        return safetensors_format.pack(tensors, metadata)

    def decode(self, data: bytes, ctx: CodecContext) -> Any:
        optimizer = _needed(ctx.optimizer, "load", "optimizer", "CodecContext.optimizer")
        model = _needed(ctx.model, "load", "model", "CodecContext.model")
        tensors, metadata = safetensors_format.unpack(data, self.format)
        _check_binding(metadata["optimizer"], _binding(optimizer, model))
        hyperparameters = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        try:
            scheduler = build_scheduler(optimizer, metadata["recipe"])
            scheduler.load_state_dict(_untagged(unpack_state(metadata["state"], tensors)))
        except (ValueError, TypeError, KeyError) as error:
            raise StoreError(f"the stored {metadata['type']} cannot be rebuilt from its recipe: {error}") from error
        finally:
            for group, saved in zip(optimizer.param_groups, hyperparameters):
                group.update(saved)
        if type(scheduler).__name__ != metadata["type"]:
            raise StoreError(f"the stored scheduler is a {metadata['type']}, but its recipe builds a "
                             f"{type(scheduler).__name__}")
        return scheduler

    def summarize(self, value: Any) -> dict[str, Any]:
        return {"type": type(value).__name__, "lr": to_jsonable(value.get_last_lr(), "lr"),
                "last_epoch": value.last_epoch, "recipe": recipe_of(value)}

    def summarize_stored(self, data: bytes, ctx: CodecContext) -> dict[str, Any]:
        """`summarize` read from the bytes, without the optimizer it is bound to."""
        tensors, _ = safetensors_format.unpack(data, self.format)
        return summarize_scheduler_bytes(data, lambda name: to_jsonable(tensors[name], "lr"))

    def accepts(self, value: Any) -> bool:
        return isinstance(value, torch.optim.lr_scheduler.LRScheduler)


def check_storable(scheduler: Any) -> dict[str, Any]:
    """The scheduler's recipe; StoreError saying how to give it one where it has none."""
    recipe = recipe_of(scheduler)
    if recipe is None:
        raise StoreError(f"a {type(scheduler).__name__} not built by cardloop.schedulers.build_scheduler has no "
                         "recipe, so it cannot be stored; build it with build_scheduler(optimizer, recipe)")
    return recipe


def _needed(value: Any, action: str, what: str, where: str) -> Any:
    if value is None:
        raise StoreError(f"cannot {action} a scheduler without the {what} it is bound to ({where})")
    return value


def _binding(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, Any]:
    """The optimizer a scheduler acts on, as stored: its type and the model's names of each group's parameters."""
    names = iter(parameter_names(optimizer, model))
    return {"type": type(optimizer).__name__,
            "groups": [[next(names) for _ in group["params"]] for group in optimizer.param_groups]}


def _check_binding(stored: dict[str, Any], given: dict[str, Any]) -> None:
    if stored == given:
        return
    sizes = [len(group) for group in stored["groups"]]
    raise StoreError(f"the stored scheduler is bound to a {stored['type']} with {len(sizes)} parameter group(s) of "
                     f"{sizes} parameters ({_first(stored)}), not to the given {given['type']} "
                     f"({_first(given)}); decode it over the optimizer it was stored with")


def _first(binding: dict[str, Any]) -> str:
    names = [name for group in binding["groups"] for name in group]
    return f"parameters {', '.join(repr(n) for n in names[:4])}{', ...' if len(names) > 4 else ''}"


def _tagged(value: Any) -> Any:
    """The state with each Counter (a MultiStepLR's milestones, whose keys are ints) as a tagged list of pairs."""
    if isinstance(value, Counter):
        return {COUNTER_TAG: sorted([key, count] for key, count in value.items())}
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    return value


def _untagged(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {COUNTER_TAG}:
            return Counter({key: count for key, count in value[COUNTER_TAG]})
        return {key: _untagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untagged(item) for item in value]
    return value
