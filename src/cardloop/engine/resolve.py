"""What a run executes and what it takes from the store (docs/design.md §4 and §5). Torch-free.

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
from cardloop.kinds import GRAPH_KINDS, STATE_KINDS


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
    if len(must_run) == len(cards):  # every card runs: nothing to load, nothing can be missing
        return Schedule(run=list(cards), skipped=[])
    index = _index(plan)
    run = set(must_run)
    graph_pulled: set[int] = set()
    value_cache: dict[int, StoredValue | None] = {}
    state_cache: dict[tuple[str, int], StoredState | None] = {}

    def stored_value(slot: int) -> StoredValue | None:
        if slot not in value_cache:
            value_cache[slot] = available.value(cards[index.producer[slot]], index.port_of[slot])
        return value_cache[slot]

    def stored_state(key: tuple[str, int]) -> StoredState | None:
        if key not in state_cache:
            state_cache[key] = available.state(key[0], key[1], cards[index.maker[key]])
        return state_cache[key]

    def pull(position: int) -> None:
        """`position` makes a value a running card needs with its autograd graph: it runs, and so do the cards
        that made the graph-carrying values it reads."""
        todo = [position]
        while todo:
            found = todo.pop()
            if found not in graph_pulled:
                graph_pulled.add(found)
                run.add(found)
                todo.extend(source for _, source, needs_graph, graph_kind in index.reads(found)
                            if needs_graph or graph_kind)

    while True:
        before = len(run)
        missing: dict[str, None] = {}  # what the final pass finds missing is what is reported
        need_v = {slot for slot in needed_slots if index.producer[slot] not in run}
        need_s = {key for key in needed_states if index.maker[key] not in run}
        live: dict[str, int] = {}
        for position in sorted(run):
            for slot, source, needs_graph, graph_kind in index.reads(position):
                if needs_graph or (graph_kind and position in graph_pulled):
                    pull(source)
                elif source not in run:
                    need_v.add(slot)
            for key, maker in index.sees(position):
                if maker not in run:
                    need_s.add(key)
                group, version = key
                last = live.get(group, version)
                if last < version:  # the cards that changed the live state since: they run too
                    run.update(index.maker[(group, between)] for between in range(last + 1, version + 1))
                live[group] = version  # seen means live from here on: loaded, or made above
            live.update(cards[position].states_made)
        for slot in sorted(need_v):
            source = index.producer[slot]
            if source not in run and stored_value(slot) is None:
                if pull_missing:
                    run.add(source)
                else:
                    missing[f"output '{index.port_of[slot]}' of card '{cards[source].id}'"] = None
        for key in sorted(need_s):
            maker = index.maker[key]
            if maker not in run and stored_state(key) is None:
                if pull_missing:
                    run.add(maker)
                else:
                    missing[f"the state '{key[0]}' as card '{cards[maker].id}' left it"] = None
        if len(run) == before:
            break

    result = Schedule(run=[cards[p] for p in sorted(run)], skipped=[], missing=list(missing))
    if with_skipped:
        result.skipped = [pc for pc in cards if pc.position not in run]
    live_groups: set[str] = set()
    for pc in result.run:
        for slot, source, _, _ in index.reads(pc.position):
            if source not in run:
                stored = stored_value(slot)
                if stored is not None:
                    result.value_loads[slot] = stored
        for group, version in pc.states_seen.items():
            if group not in live_groups and index.maker[(group, version)] not in run:
                stored = stored_state((group, version))
                if stored is not None:
                    result.state_loads.setdefault(pc.position, []).append((group, version, stored))
            live_groups.add(group)
        live_groups.update(pc.states_made)
    return result


class _Index:
    """What the scheduler looks up, worked out once per plan (what it asks of single cards: when first asked).
    Cards are named by position."""

    def __init__(self, plan: Plan):
        self.cards = plan.cards
        self.producer: list[int] = []  # by slot: the card that makes it
        self.port_of: list[str] = []  # by slot: its output port
        self.kinds: list[str] = []  # by slot: its kind
        self.maker: dict[tuple[str, int], int] = {}  # (group, version) -> the card that made it
        self.state_slots: set[int] = set()
        self._graph_ports: dict[str, frozenset[str]] = {}  # by card type: the input ports that need a graph
        read: set[int] = set()
        last: dict[str, int] = {}
        for pc in plan.cards:
            self.producer += [pc.position] * len(pc.output_slots)
            self.port_of += pc.output_slots
            self.kinds += [port.kind for port in pc.card_type.outputs]
            for made in pc.states_made.items():
                self.maker[made] = pc.position
            last.update(pc.states_made)
            for port in pc.state_outputs:
                self.state_slots.add(pc.output_slots[port])
            for binding in pc.bindings:
                read.add(binding.slot)
        #: the value outputs that no card reads, and the last version of every state group
        self.results = frozenset(slot for slot, kind in enumerate(self.kinds)
                                 if slot not in read and kind not in STATE_KINDS)
        self.final = frozenset(last.items())
        self._reads: dict[int, list[tuple[int, int, bool, bool]]] = {}

    def reads(self, position: int) -> list[tuple[int, int, bool, bool]]:
        """The card's inputs that are not training state: (slot, source, the port needs a graph, the value is of
        a kind that carries one)."""
        found = self._reads.get(position)
        if found is None:
            pc = self.cards[position]
            graph_ports = self._graph_ports.get(pc.card_type.id)
            if graph_ports is None:
                graph_ports = self._graph_ports[pc.card_type.id] = frozenset(
                    p.name for p in pc.card_type.inputs if p.needs_graph)
            found = self._reads[position] = [(slot, source, port in graph_ports, self.kinds[slot] in GRAPH_KINDS)
                                             for port, source, _, slot in pc.bindings if slot not in self.state_slots]
        return found

    def sees(self, position: int) -> list[tuple[tuple[str, int], int]]:
        """The state versions the card sees, each with the card that made it."""
        return [(seen, self.maker[seen]) for seen in self.cards[position].states_seen.items()]


def _index(plan: Plan) -> _Index:
    if plan._schedule_index is None:
        plan._schedule_index = _Index(plan)
    return plan._schedule_index


def final_states(plan: Plan) -> frozenset[tuple[str, int]]:
    """The last version of every state group: what a run must leave in the store or in memory."""
    return _index(plan).final


def unread_slots(plan: Plan) -> frozenset[int]:
    """Value outputs that no card reads: the run's results."""
    return _index(plan).results
