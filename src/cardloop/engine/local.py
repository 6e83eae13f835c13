"""The local executor: every card in this process, live objects passed along links (DESIGN, Executors)."""

from __future__ import annotations

import time
from typing import Any

from cardloop.cards.spec import CardContext
from cardloop.engine.events import RunHooks
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.errors import CardError, CardFailed


class LocalExecutor:
    """Runs the plan's cards in script order in this process; state is the live PyTorch objects."""

    name = "local"

    def run(self, plan: Plan, hooks: RunHooks, slots: list[Any] | None = None) -> list[Any]:
        """Run every card; returns the value slots. Raises CardFailed naming the card that failed."""
        slots = slots if slots is not None else [None] * plan.slot_count
        clock = time.perf_counter
        for pc, fixed in [(pc, _fixed_arguments(pc)) for pc in plan.cards]:
            kwargs = {b.port: slots[b.slot] for b in pc.bindings}
            kwargs.update(fixed)
            hooks.card_started(pc)
            started = clock()
            try:
                outputs = pc.card_type.run(**kwargs)
                missing = [name for name in pc.output_slots if name not in outputs]
                if missing:
                    raise CardError(f"its run function returned no value for output(s) {missing}")
            except Exception as exc:
                failure = exc if isinstance(exc, CardFailed) else CardFailed(pc.id, pc.card.type, _describe(exc))
                hooks.card_failed(pc, failure, started, clock() - started)
                raise failure from exc
            seconds = clock() - started
            for name, slot in pc.output_slots.items():
                slots[slot] = outputs[name]
            hooks.card_done(pc, outputs, started, seconds)
        return slots


def _fixed_arguments(pc: PlannedCard) -> dict[str, Any]:
    """The arguments of a card's run function that do not change between runs: config, context,
    and None for each optional input left unconnected."""
    bound = {b.port for b in pc.bindings}
    fixed: dict[str, Any] = {p.name: None for p in pc.card_type.inputs if p.name not in bound}
    fixed["config"] = pc.config
    if pc.card_type.wants_context:
        fixed["ctx"] = CardContext(pc.id, pc.card.type, pc.sources())
    return fixed


def _describe(exc: BaseException) -> str:
    """A user's mistake (CardError) reads as its sentence; anything else keeps its exception type."""
    if isinstance(exc, CardError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
