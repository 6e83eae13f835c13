"""`when` on top-level cards (docs/blocks.md, Conditions): which cards of a plan may be skipped, and why one is.

A card with `when` runs only when its condition holds on the values it reads (its WHEN_PORT bindings). A card
that is skipped leaves its value outputs SKIPPED and passes the training state it received on unchanged; a card
that needs a skipped value is skipped too, and an optional input that would get one gets None. Only the cards
that can meet a skip get a gate, so a plan without `when` runs as it did.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cardloop.engine.plan import WHEN_PORT, Plan, PlannedCard
from cardloop.pipeline.blocks import SKIPPED, condition_holds


class Gate(NamedTuple):
    """What deciding on one card needs: its required and optional inputs' slots, its condition, and where each of
    its outputs goes when it is skipped (the slot of the state input it continues, or None for SKIPPED)."""

    required: tuple[tuple[str, int], ...]
    optional: tuple[tuple[str, int], ...]
    condition: Any
    skipped_outputs: tuple[tuple[int, int | None], ...]


def gates(plan: Plan, running: list[PlannedCard] | None = None) -> dict[int, Gate]:
    """The gate of every card that has a `when` or reads a card that may be skipped, by position."""
    found: dict[int, Gate] = {}
    may_skip: set[int] = set()  # value slots that a skipped card may leave SKIPPED
    for pc in plan.cards if running is None else running:
        inputs = [b for b in pc.bindings if not b.port.startswith(WHEN_PORT)]
        if pc.condition is None and not any(b.slot in may_skip for b in inputs):
            continue
        required_ports = {p.name for p in pc.card_type.inputs if p.required}
        by_port = {b.port: b.slot for b in inputs}
        state_of = {p.name: p.state_of for p in pc.card_type.outputs if p.state_of}
        outputs = tuple((slot, by_port.get(state_of.get(name, ""))) for name, slot in pc.output_slots.items())
        may_skip.update(slot for slot, source in outputs if source is None or source in may_skip)
        found[pc.position] = Gate(tuple((b.port, b.slot) for b in inputs if b.port in required_ports),
                                  tuple((b.port, b.slot) for b in inputs if b.port not in required_ports),
                                  pc.condition, outputs)
    return found


def skip_reason(plan: Plan, pc: PlannedCard, gate: Gate, slots: list[Any]) -> str | None:
    """Why the card is skipped now, or None when it runs."""
    reason = _needs_skipped(gate, lambda slot: slots[slot] is SKIPPED)
    if reason is not None or gate.condition is None:
        return reason
    holds = condition_holds(gate.condition, lambda position, port: plan.cards[position].output_slots[port], slots,
                            [], [])
    if holds is None:
        return "the value its `when` reads comes from a card that was skipped"
    return None if holds else f"its `when` did not hold ({_brief(pc.card.when)})"


def skip_before_sending(pc: PlannedCard, gate: Gate, skipped: set[int]) -> str | None:
    """Why a card is skipped before it is sent to another process: it needs a value, or its `when` reads one, that
    a skipped card did not make (`skipped`: those slots). Its own `when` is decided where it runs."""
    reason = _needs_skipped(gate, skipped.__contains__)
    if reason is None and any(b.slot in skipped for b in pc.bindings if b.port.startswith(WHEN_PORT)):
        return "the value its `when` reads comes from a card that was skipped"
    return reason


def mark_skipped(gate: Gate | None, skipped: set[int]) -> None:
    """Note the slots a skipped card leaves without a value: its value outputs, and the state it passes on when
    that state was never made."""
    if gate is not None:
        skipped.update(slot for slot, source in gate.skipped_outputs if source is None or source in skipped)


def _needs_skipped(gate: Gate, is_skipped: Any) -> str | None:
    for port, slot in gate.required:
        if is_skipped(slot):
            return f"its input '{port}' comes from a card that was skipped"
    return None


def skip(gate: Gate, slots: list[Any]) -> None:
    """Leave a skipped card's outputs: SKIPPED, or the state it received, unchanged."""
    for slot, source in gate.skipped_outputs:
        slots[slot] = SKIPPED if source is None else slots[source]


def optional_inputs(gate: Gate, kwargs: dict[str, Any]) -> None:
    """An optional input that would get a skipped value gets None, as if it were not connected."""
    for port, _ in gate.optional:
        if kwargs.get(port) is SKIPPED:
            kwargs[port] = None


def _brief(when: Any) -> str:
    import json

    return json.dumps(when, sort_keys=True, default=str)
