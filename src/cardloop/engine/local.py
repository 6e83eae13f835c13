"""The local executor: every card in this process, live objects passed along links (docs/design.md, Executors)."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

from cardloop.engine.events import RunHooks, listens
from cardloop.engine.plan import WHEN_PORT, Plan, PlannedCard
from cardloop.engine.resolve import Schedule
from cardloop.engine.state_guard import UndeclaredStateChange, guarded
from cardloop.engine.when import gates, optional_inputs, skip, skip_reason
from cardloop.errors import CardError, CardFailed


class Released:
    """Stands in a slot for a value dropped after its last reader."""

    def __repr__(self) -> str:
        return "<released after its last use>"


RELEASED = Released()


class LocalExecutor:
    """Runs the plan's cards in script order in this process; state is the live PyTorch objects."""

    name = "local"

    def __init__(self, keep_outputs: bool = False, resumes: dict[int, Any] | None = None,
                 stored_by_type: dict[int, dict[str, str]] | None = None):
        """`resumes`: {position: (step, {group: snapshot members}, extra)} for the cards that go on from a
        checkpoint taken inside them in an earlier run (their context's `resumed`). `stored_by_type`:
        {position: {port: why}} for the outputs of kind `any` that the run stores, whose values the card that
        makes them checks (`state_guard.guarded`)."""
        self.keep_outputs = keep_outputs
        self.resumes = resumes or {}
        self.stored_by_type = stored_by_type or {}

    def run(self, plan: Plan, hooks: RunHooks, slots: list[Any] | None = None, schedule: Schedule | None = None,
            loader: Any = None) -> list[Any]:
        """Run the scheduled cards (every card without a schedule); returns the value slots. Before a card,
        what the schedule takes from the store is loaded with `loader`. Raises CardFailed naming the card.

        Values that cards read are dropped after their last reader (unless `keep_outputs`): holding every
        step's batch, predictions and loss alive costs memory and, measurably, speed. A dropped value that may
        carry an autograd graph stays alive until the next value of its card type and port replaces it, as
        a hand-written loop's variables do (Plan.releases says why)."""
        slots = slots if slots is not None else [None] * plan.slot_count
        running = plan.cards if schedule is None else schedule.run
        releases = {} if self.keep_outputs else plan.releases(running)
        held: dict[Any, Any] = {}  # by hold key: the last released value that may carry an autograd graph
        clock = time.perf_counter
        started_hook = hooks.card_started if listens(hooks, "card_started") else None
        done_hook = hooks.card_done
        loading = set() if schedule is None else _positions_with_loads(schedule)
        progress = hooks.card_progress if listens(hooks, "card_progress") else None
        checkpoint = hooks.card_checkpoint if listens(hooks, "card_checkpoint") else None
        prepared = [_prepared(plan, pc, progress, checkpoint, self.stored_by_type.get(pc.position)) for pc in running]
        gated = gates(plan, running)
        for pc, run, fixed, inputs, outputs_at in prepared:
            if pc.position in loading:
                _load_inputs(plan, pc, schedule, loader, slots)
            gate = gated.get(pc.position) if gated else None
            if gate is not None:
                reason = skip_reason(plan, pc, gate, slots)
                if reason is not None:
                    skip(gate, slots)
                    hooks.card_skipped(pc, reason)
                    _release(releases.get(pc.position, ()), slots, held)
                    continue
            kwargs = fixed.copy()
            if pc.position in self.resumes:
                kwargs["ctx"] = _resume(plan, pc, self.resumes[pc.position], loader, slots, kwargs["ctx"])
            for port, slot in inputs:
                kwargs[port] = slots[slot]
            if gate is not None:
                optional_inputs(gate, kwargs)
            if started_hook is not None:
                started_hook(pc)
            started = clock()
            try:
                outputs = run(**kwargs)
            except Exception as exc:
                raise _failed(hooks, pc, exc, started) from exc
            except BaseException:  # Ctrl-C inside the card: the state it works on may be half changed
                hooks.card_interrupted(pc)
                raise
            seconds = clock() - started
            try:
                for name, slot in outputs_at:
                    slots[slot] = outputs[name]
            except (KeyError, TypeError, IndexError) as exc:
                raise _failed(hooks, pc, CardError(_bad_outputs(pc, outputs)), started) from exc
            done_hook(pc, outputs, started, seconds)
            for slot, hold in releases.get(pc.position, ()):
                if hold is not None:
                    held[hold] = slots[slot]
                slots[slot] = RELEASED
        return slots


def _release(releases: tuple, slots: list[Any], held: dict[Any, Any]) -> None:
    """Drop the values a card was the last reader of (the loop does it inline, this for a skipped card)."""
    for slot, hold in releases:
        if hold is not None:
            held[hold] = slots[slot]
        slots[slot] = RELEASED


def _positions_with_loads(schedule: Schedule) -> set[int]:
    loads = set(schedule.state_loads)
    for pc in schedule.run:
        if any(b.slot in schedule.value_loads for b in pc.bindings):
            loads.add(pc.position)
    return loads


def _load_inputs(plan: Plan, pc: PlannedCard, schedule: Schedule, loader: Any, slots: list[Any]) -> None:
    """Put what this card takes from the store into its slots: training state first, then values."""
    for _group, _version, stored in schedule.state_loads.get(pc.position, ()):
        for name, value in loader.state(stored).items():
            for slot in plan.state_slots(name):
                slots[slot] = value
    for binding in pc.bindings:
        stored = schedule.value_loads.get(binding.slot)
        if stored is not None and slots[binding.slot] is None:
            slots[binding.slot] = loader.value(stored)


def _resume(plan: Plan, pc: PlannedCard, resume: tuple, loader: Any, slots: list[Any], ctx: Any) -> Any:
    """Restore the training state a card works on to its checkpoint inside an earlier run of it, in place, and
    return its context telling it so."""
    from cardloop.engine.resolve import StoredState
    from cardloop.engine.snapshot import restore_into

    step, groups, extra = resume
    for members in groups.values():
        for name, loaded in loader.state(StoredState(members)).items():
            restore_into(slots[plan.states[name].slot], loaded)
    return dataclasses.replace(ctx, resumed=(step, extra))


def _prepared(plan: Plan, pc: PlannedCard, progress: Callable | None = None, checkpoint: Callable | None = None,
              stored_by_type: dict[str, str] | None = None) -> tuple:
    """What the loop needs of a card, looked up once per run: its run function (with the checks of
    `state_guard.guarded`, which most cards do not need); the arguments that do not change
    (config, context, None for each optional input left unconnected); its (port, slot) pairs. The context's
    `report` and `checkpoint` go to the hooks of those names, when one listens."""
    bound = {b.port for b in pc.bindings}  # (and the when: bindings, which no card type has as a port)
    fixed: dict[str, Any] = {p.name: None for p in pc.card_type.inputs if p.name not in bound}
    fixed["config"] = pc.config
    if pc.card_type.wants_context:
        ctx = plan.context(pc)
        if progress is not None:
            ctx = dataclasses.replace(ctx, report=functools.partial(progress, pc))
        if checkpoint is not None and pc.states_seen:
            ctx = dataclasses.replace(ctx, checkpoint=functools.partial(checkpoint, pc))
        fixed["ctx"] = ctx
    inputs = tuple((b.port, b.slot) for b in pc.bindings if not b.port.startswith(WHEN_PORT))
    return pc, guarded(pc, pc.card_type.run, stored_by_type), fixed, inputs, tuple(pc.output_slots.items())


def _failed(hooks: RunHooks, pc: PlannedCard, exc: Exception, started: float) -> CardFailed:
    """Report a card's failure to the hooks and return it as the CardFailed to raise."""
    failure = exc if isinstance(exc, CardFailed) else \
        CardFailed(pc.id, pc.card.type, _describe(exc), changed_state=isinstance(exc, UndeclaredStateChange))
    hooks.card_failed(pc, failure, started, time.perf_counter() - started)
    return failure


def _bad_outputs(pc: PlannedCard, outputs: Any) -> str:
    if not isinstance(outputs, dict):
        return f"its run function must return a dict of outputs, not {type(outputs).__name__}"
    missing = [name for name in pc.output_slots if name not in outputs]
    return f"its run function returned no value for output(s) {missing}"


def _describe(exc: BaseException) -> str:
    """A user's mistake (CardError) reads as its sentence; anything else keeps its exception type."""
    if isinstance(exc, CardError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
