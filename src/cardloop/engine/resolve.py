"""What a run executes and what it takes from the store (DESIGN 4 and 5). Torch-free.

Given what the store already holds for the plan's cache keys, `schedule` picks the cards that must
execute and, for each of them, where its inputs come from: a card running before it in the same process,
a stored value, or a stored snapshot of the training state. It grows the set of running cards until:

- every value a running card reads is made by a running card or is in the store;
- every input that needs an autograd graph (a loss for Backward) is made in the same process, together with
  the graph-carrying values (losses, tensors) it was made from: a stored loss has no graph (lineage);
- a training-state group, once live in the process, is never replaced by a snapshot: every card that
  changes it between two running cards runs too, so gradients and graphs stay on the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cardloop.engine.plan import Plan, PlannedCard
from cardloop.errors import CardloopError
from cardloop.kinds import LOSS, STATE_KINDS, TENSOR

GRAPH_KINDS = frozenset({LOSS, TENSOR})


@dataclass(frozen=True)
class StoredValue:
    """A value in the store: an artifact (`digest`), or a summary that is the whole value (infos, scalars)."""

    kind: str
    digest: str | None = None
    summary: Any = None


@dataclass(frozen=True)
class StoredState:
    """A snapshot of a state group: member name -> {"kind", "digest"} (the RNG state among them)."""

    members: dict[str, dict[str, str]]


class Availability(Protocol):
    def value(self, pc: PlannedCard, port: str) -> StoredValue | None: ...

    def state(self, group: str, version: int, maker: PlannedCard) -> StoredState | None: ...


@dataclass
class Schedule:
    """The cards to execute, in order, and what to load before each of them."""

    run: list[PlannedCard]
    skipped: list[PlannedCard]
    value_loads: dict[int, StoredValue] = field(default_factory=dict)
    state_loads: dict[int, list[tuple[str, int, StoredState]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def run_positions(self) -> set[int]:
        return {pc.position for pc in self.run}


class Missing(CardloopError):
    """A card cannot run alone: inputs it needs were never stored."""


def schedule(plan: Plan, available: Availability, must_run: set[int], *, needed_slots: set[int] = frozenset(),
             needed_states: set[tuple[str, int]] = frozenset(), pull_missing: bool = True,
             with_skipped: bool = True) -> Schedule:
    """Grow `must_run` until everything the running cards and the targets need can be had.

    `needed_slots` and `needed_states` are the run's targets besides the cards themselves. With
    `pull_missing=False` (a card run alone), nothing is added for a missing value or state: it is reported
    in `missing`; only the lineage of graph inputs and the continuity of live state may add cards.
    """
    cards = plan.cards
    producer, port_of, state_slots, maker = _indexes(plan)
    run = set(must_run)
    graph_pulled: set[int] = set()
    value_cache: dict[int, StoredValue | None] = {}
    state_cache: dict[tuple[str, int], StoredState | None] = {}

    def stored_value(slot: int) -> StoredValue | None:
        if slot not in value_cache:
            value_cache[slot] = available.value(producer[slot], port_of[slot])
        return value_cache[slot]

    def stored_state(key: tuple[str, int]) -> StoredState | None:
        if key not in state_cache:
            state_cache[key] = available.state(key[0], key[1], maker[key])
        return state_cache[key]

    while True:
        before = (len(run), len(graph_pulled))
        missing: dict[str, None] = {}  # what the final pass finds missing is what is reported
        need_v, need_s = set(needed_slots), set(needed_states)
        for pc in [cards[p] for p in sorted(run)]:
            for binding in pc.bindings:
                if binding.slot in state_slots:
                    continue
                port = pc.card_type.input(binding.port)
                source = producer[binding.slot]
                graph = (port is not None and port.needs_graph) or (
                    pc.position in graph_pulled and source.card_type.output(binding.source_port).kind in GRAPH_KINDS)
                if graph:
                    if source.position not in run:
                        run.add(source.position)
                    graph_pulled.add(source.position)
                else:
                    need_v.add(binding.slot)
            need_s.update(pc.states_seen.items())
        for slot in need_v:
            source = producer[slot]
            if source.position not in run and stored_value(slot) is None:
                if pull_missing:
                    run.add(source.position)
                else:
                    missing[f"output '{port_of[slot]}' of card '{source.id}'"] = None
        for key in need_s:
            made_by = maker[key]
            if made_by.position not in run and stored_state(key) is None:
                if pull_missing:
                    run.add(made_by.position)
                else:
                    missing[f"the state '{key[0]}' as card '{made_by.id}' left it"] = None
        live: dict[str, int] = {}
        for pc in [cards[p] for p in sorted(run)]:
            for group, version in pc.states_seen.items():
                for between in range(live.get(group, version) + 1, version + 1):
                    run.add(maker[(group, between)].position)
                live[group] = version  # seen means live from here on: loaded, or made above
            for group, version in pc.states_made.items():
                live[group] = version
        if (len(run), len(graph_pulled)) == before:
            break

    result = Schedule(run=[cards[p] for p in sorted(run)], skipped=[], missing=list(missing))
    if with_skipped:
        result.skipped = [pc for pc in cards if pc.position not in run]
    live_groups: set[str] = set()
    for pc in result.run:
        for binding in pc.bindings:
            if binding.slot in state_slots or producer[binding.slot].position in run:
                continue
            stored = stored_value(binding.slot)
            if stored is not None:
                result.value_loads[binding.slot] = stored
        for group, version in pc.states_seen.items():
            if group not in live_groups and maker[(group, version)].position not in run:
                stored = stored_state((group, version))
                if stored is not None:
                    result.state_loads.setdefault(pc.position, []).append((group, version, stored))
            live_groups.add(group)
        live_groups.update(pc.states_made)
    return result


def _indexes(plan: Plan) -> tuple[dict, dict, set, dict]:
    """Who makes each slot and state version, computed once per plan."""
    cached = getattr(plan, "_schedule_indexes", None)
    if cached is None:
        producer = {slot: pc for pc in plan.cards for slot in pc.output_slots.values()}
        port_of = {slot: port for pc in plan.cards for port, slot in pc.output_slots.items()}
        state_slots = {slot for pc in plan.cards for port, slot in pc.output_slots.items()
                       if port in pc.state_outputs}
        maker = {(g, v): pc for pc in plan.cards for g, v in pc.states_made.items()}
        cached = (producer, port_of, state_slots, maker)
        plan._schedule_indexes = cached
    return cached


def final_states(plan: Plan) -> set[tuple[str, int]]:
    """The last version of every state group: what a run must leave in the store or in memory."""
    last: dict[str, int] = {}
    for pc in plan.cards:
        last.update(pc.states_made)
    return set(last.items())


def unread_slots(plan: Plan) -> set[int]:
    """Value outputs that no card reads: the run's results."""
    read = {b.slot for pc in plan.cards for b in pc.bindings}
    return {slot for pc in plan.cards for port, slot in pc.output_slots.items()
            if slot not in read and pc.card_type.output(port).kind not in STATE_KINDS}
