"""Checks on the training state a card receives and makes, at that card, rather than at the run's end.

A model a card makes must have an architecture recipe, an optimizer must be one of torch.optim's, and a
scheduler must have a recipe (`cardloop.schedulers.build_scheduler`), or no snapshot can store them: found right
after the card that made them, naming the port, instead of when the run ends and stores its final state. Likewise a value on an output of kind `any` that the run stores, whose codec
is chosen by the value's type: the plan says which outputs those are (`work.check_storable`).

A card that changes the training state it receives must declare `mutates_state=True`.
Such a card makes no new version of the state: its change is in no cache key, no snapshot holds it (the
process executor drops it), and the cards after it are served from the cache as if it had not happened. Torch
counts in-place changes of every tensor (`_version`); comparing those counters, and which tensors a model,
its gradients and an optimizer hold, before and after the card finds the change. Only cards that are not
built in are watched: the built-in cards declare what they do, and their steps pay nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from cardloop.cards.registry import BUILTIN_MODULES
from cardloop.engine.plan import PlannedCard
from cardloop.errors import CardError, StoreError
from cardloop.kinds import MODEL, OPTIMIZER, SCHEDULER, STATE_KINDS


class UndeclaredStateChange(CardError):
    """A card changed the training state it received, but its card type does not say it does."""


def guarded(pc: PlannedCard, run: Callable[..., Any], stored_by_type: Mapping[str, str] | None = None
            ) -> Callable[..., Any]:
    """`run` with the checks this card needs: for most cards none, and `run` itself. `stored_by_type`:
    {port: why the run stores it} for its outputs of kind `any` that the run stores."""
    made = tuple(port.name for port in pc.card_type.outputs
                 if port.kind in (MODEL, OPTIMIZER, SCHEDULER) and port.state_of is None)
    if made or stored_by_type:
        run = _checking_storable(run, made, stored_by_type or {})
    if needs_watching(pc):
        run = watched(pc, run)
    return run


def _checking_storable(run: Callable[..., Any], ports: tuple[str, ...],
                       stored_by_type: Mapping[str, str]) -> Callable[..., Any]:
    """`run`, checking that each model it makes on `ports` has the recipe that storing it needs, that each
    optimizer is one that loading can rebuild, that each scheduler has its recipe, and that a codec can store each
    value on `stored_by_type`."""
    import torch

    from cardloop.store.codecs import codec_for_value
    from cardloop.store.model_codec import recipe_of
    from cardloop.store.optimizer_codec import check_rebuildable
    from cardloop.store.scheduler_codec import check_storable

    def run_checked(**kwargs: Any) -> Any:
        outputs = run(**kwargs)
        if not isinstance(outputs, dict):  # the executor says what a run function must return
            return outputs
        for port, why in stored_by_type.items():
            if outputs.get(port) is not None:
                try:
                    codec_for_value(outputs[port])
                except StoreError as error:
                    raise CardError(f"its output '{port}' cannot be stored, and this run must store it ({why}): "
                                    f"{error}") from None
        for port in ports:
            made = outputs.get(port)
            if made is not None:
                try:
                    if isinstance(made, torch.nn.Module):
                        recipe_of(made)
                    elif isinstance(made, torch.optim.Optimizer):
                        check_rebuildable(made)
                    else:
                        check_storable(made)
                except StoreError as error:
                    raise CardError(f"its output '{port}' cannot be stored: {error}") from None
        return outputs

    return run_checked


def needs_watching(pc: PlannedCard) -> bool:
    """A card that receives training state it makes no new version of, and whose declaration is not known."""
    card_type = pc.card_type
    return (not card_type.mutates_state and any(group not in pc.states_made for group in pc.states_seen)
            and card_type.run.__module__ not in BUILTIN_MODULES)


def watched(pc: PlannedCard, run: Callable[..., Any]) -> Callable[..., Any]:
    """`run`, checking that the training state passed to it on ports of a state kind comes back unchanged."""
    ports = [port.name for port in pc.card_type.inputs if port.kind in STATE_KINDS]

    def run_watched(**kwargs: Any) -> Any:
        states = {port: kwargs[port] for port in ports if kwargs.get(port) is not None}
        before = {port: fingerprint(value) for port, value in states.items()}
        outputs = run(**kwargs)
        for port, value in states.items():
            changed = _first_change(before[port], fingerprint(value))
            if changed is not None:
                raise UndeclaredStateChange(
                    f"it changed {changed} of its input '{port}', but card type '{pc.card_type.id}' is declared "
                    "without mutates_state=True, so the change would make no new version of the training state "
                    "(the cache and the process executor would lose it); declare it with "
                    "@card(..., mutates_state=True), or work on a copy")
        return outputs

    return run_watched


def fingerprint(value: Any) -> list[tuple[str, Any]]:
    """(what, mark) pairs that change when a model's or optimizer's state changes: every tensor's identity and
    in-place version counter, a model's gradients and train/eval flags, an optimizer's state and hyperparameters."""
    import torch

    if isinstance(value, torch.nn.Module):
        marks = [(f"parameter '{name}'", _mark(p)) for name, p in value.named_parameters()]
        marks += [(f"the gradient of parameter '{name}'", _mark(p.grad)) for name, p in value.named_parameters()]
        marks += [(f"buffer '{name}'", _mark(b)) for name, b in value.named_buffers()]
        marks.append(("its train/eval mode", tuple(m.training for m in value.modules())))
        return marks
    if isinstance(value, torch.optim.Optimizer):
        marks = []
        for index, group in enumerate(value.param_groups):
            marks.append((f"the hyperparameters of parameter group {index}",
                          _plain({k: v for k, v in group.items() if k != "params"})))
            marks += [(f"parameter {i} of group {index}", _mark(p)) for i, p in enumerate(group["params"])]
            marks += [(f"the gradient of parameter {i} of group {index}", _mark(p.grad))
                      for i, p in enumerate(group["params"])]
        marks.append(("its state", [(id(p), _plain(s)) for p, s in value.state.items()]))
        return marks
    state_dict = getattr(value, "state_dict", None)  # a scheduler: its counters
    return [("its state", repr(state_dict()))] if callable(state_dict) else []


def _mark(tensor: Any) -> tuple[int, int] | None:
    return None if tensor is None else (id(tensor), tensor._version)


def _plain(value: Any) -> Any:
    """`value` with every tensor in it replaced by its mark, so that comparing never compares tensors."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return _mark(value) if hasattr(value, "_version") else value


def _first_change(before: list[tuple[str, Any]], after: list[tuple[str, Any]]) -> str | None:
    if len(before) != len(after):
        return "its structure"
    return next((what for (what, old), (_, new) in zip(before, after) if old != new), None)
