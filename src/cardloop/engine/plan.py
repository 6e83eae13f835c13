"""Planning: script order, training-state versions and lineage cache keys (DESIGN 1, 2, 5). Torch-free.

Training state (model, optimizer, scheduler) is tracked by identity. A state is named after the output that
made it (`opt.optimizer`); an output with `state_of` continues the state it received. States bound together
(a model and the optimizers and schedulers made from it) form a group with one version counter: every card
that changes the group, or adds a member to it, makes its next version. A card sees each group at the
version the cards above it left, whatever link it was drawn with.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardloop.cards.registry import Registry, default_registry
from cardloop.cards.spec import CardConfig, CardContext, CardType
from cardloop.kinds import MODEL, STATE_KINDS
from cardloop.pipeline.model import Card, OutputRef, Pipeline
from cardloop.pipeline.validate import check_pipeline, parse_config


@dataclass(frozen=True)
class Binding:
    """Input `port` is fed by output `source_port` of the card at `source` (a position), held in `slot`."""

    port: str
    source: int
    source_port: str
    slot: int


@dataclass
class PlannedCard:
    position: int
    card: Card
    card_type: CardType
    config: CardConfig
    bindings: tuple[Binding, ...]
    output_slots: dict[str, int]
    #: state name carried by each state-kind output port
    state_outputs: dict[str, str] = field(default_factory=dict)
    #: group -> version this card saw / made
    states_seen: dict[str, int] = field(default_factory=dict)
    states_made: dict[str, int] = field(default_factory=dict)
    cache_key: str = ""

    @property
    def id(self) -> str:
        return self.card.id

    def sources(self) -> dict[str, str]:
        return {b.port: self.card.inputs[b.port] for b in self.bindings}


@dataclass(frozen=True)
class StateInfo:
    """A training-state object: its kind, its group and the slot that first held it."""

    name: str
    kind: str
    group: str
    slot: int


@dataclass
class Plan:
    pipeline: Pipeline
    cards: list[PlannedCard]
    states: dict[str, StateInfo]
    slot_count: int
    _readers_by_slot: dict[int, list[PlannedCard]] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.cards)

    def position(self, card_id: str) -> int:
        return next(pc.position for pc in self.cards if pc.id == card_id)

    def group_members(self, group: str) -> list[StateInfo]:
        return [s for s in self.states.values() if s.group == group]

    def group_root(self, group: str) -> StateInfo:
        """The model a group's optimizers and schedulers are bound to (its first member)."""
        members = self.group_members(group)
        return next((m for m in members if m.kind == MODEL), members[0])

    def context(self, pc: PlannedCard) -> CardContext:
        """What card `pc` may know about itself while it runs."""
        readers = self._readers()
        earlier = {b.port: tuple((r.id, r.card.type) for r in readers[b.slot] if r.position < pc.position)
                   for b in pc.bindings}
        return CardContext(pc.id, pc.card.type, pc.sources(), earlier)

    def _readers(self) -> dict[int, list[PlannedCard]]:
        if self._readers_by_slot is None:
            self._readers_by_slot = {}
            for pc in self.cards:
                for binding in pc.bindings:
                    self._readers_by_slot.setdefault(binding.slot, []).append(pc)
        return self._readers_by_slot

    def releases(self, running: list[PlannedCard] | None = None) -> dict[int, tuple[int, ...]]:
        """For each card position, the value slots it is the last reader of (never training state), so an
        executor can drop them right after it, as a hand-written loop drops last step's tensors."""
        last: dict[int, int] = {}
        for pc in self.cards if running is None else running:
            for binding in pc.bindings:
                last[binding.slot] = pc.position
        state_slots = {slot for pc in self.cards for port, slot in pc.output_slots.items()
                       if port in pc.state_outputs}
        by_card: dict[int, list[int]] = {}
        for slot, position in last.items():
            if slot not in state_slots:
                by_card.setdefault(position, []).append(slot)
        return {position: tuple(slots) for position, slots in by_card.items()}

    def state_slots(self, name: str) -> list[int]:
        """Every output slot that carries the training state `name` (where a loaded state must be put)."""
        return [slot for pc in self.cards for port, slot in pc.output_slots.items()
                if pc.state_outputs.get(port) == name]

    def truncated(self, last_position: int) -> "Plan":
        """The plan up to and including the card at `last_position` (for `--until`)."""
        cards = self.cards[: last_position + 1]
        states = {name: s for name, s in self.states.items() if any(s.slot in pc.output_slots.values() for pc in cards)}
        return Plan(self.pipeline, cards, states, self.slot_count)

    def consumers(self) -> dict[int, int]:
        """How many inputs read each slot."""
        counts: dict[int, int] = {}
        for pc in self.cards:
            for binding in pc.bindings:
                counts[binding.slot] = counts.get(binding.slot, 0) + 1
        return counts


def plan_pipeline(pipeline: Pipeline, registry: Registry | None = None, source: str | None = None) -> Plan:
    """Validate the pipeline and plan it: slots, state versions and cache keys."""
    registry = registry or default_registry()
    check_pipeline(pipeline, registry, source)
    positions = {card.id: i for i, card in enumerate(pipeline.cards)}
    slots: dict[tuple[int, str], int] = {}
    value_keys: dict[int, str] = {}
    slot_state: dict[int, str] = {}
    states: dict[str, StateInfo] = {}
    group_version: dict[str, int] = {}
    version_key: dict[tuple[str, int], str] = {}
    planned: list[PlannedCard] = []
    file_hashes: dict[str, str] = {}

    for position, card in enumerate(pipeline.cards):
        card_type = registry.get(card.type)
        config = parse_config(card, card_type)
        bindings = []
        for port in card_type.inputs:
            if port.name not in card.inputs:
                continue
            ref = OutputRef.parse(card.inputs[port.name])
            source_position = positions[ref.card]
            bindings.append(Binding(port.name, source_position, ref.port, slots[(source_position, ref.port)]))
        output_slots = {}
        for port in card_type.outputs:
            output_slots[port.name] = slots[(position, port.name)] = len(slots)
        pc = PlannedCard(position, card, card_type, config, tuple(bindings), output_slots)

        touched = []
        for binding in bindings:
            name = slot_state.get(binding.slot)
            if name is not None and states[name].group not in touched:
                touched.append(states[name].group)
        pc.states_seen = {group: group_version[group] for group in touched}

        grown: list[str] = []
        for port in card_type.outputs:
            if port.kind not in STATE_KINDS:
                continue
            slot = output_slots[port.name]
            if port.state_of is not None:
                fed = next(b for b in bindings if b.port == port.state_of) if port.state_of in card.inputs else None
                if fed is not None and fed.slot in slot_state:
                    slot_state[slot] = slot_state[fed.slot]
                    pc.state_outputs[port.name] = slot_state[fed.slot]
                continue
            name = f"{card.id}.{port.name}"
            group = touched[0] if (port.kind != MODEL and touched) else name
            states[name] = StateInfo(name, port.kind, group, slot)
            slot_state[slot] = name
            pc.state_outputs[port.name] = name
            if group in group_version:
                grown.append(group)
            else:
                group_version[group] = 0
                pc.states_made[group] = 0

        pc.cache_key = _cache_key(pc, value_keys, {g: version_key[(g, v)] for g, v in pc.states_seen.items()},
                                  slot_state, file_hashes)
        changed = set(grown) | (set(touched) if card_type.mutates_state else set())
        for group in touched + [g for g in grown if g not in touched]:
            if group in changed:
                group_version[group] += 1
                pc.states_made[group] = group_version[group]
        for group, version in pc.states_made.items():
            version_key[(group, version)] = pc.cache_key
        for port, slot in output_slots.items():
            value_keys[slot] = f"{pc.cache_key}:{port}"
        planned.append(pc)

    return Plan(pipeline, planned, states, len(slots))


def _cache_key(pc: PlannedCard, value_keys: dict[int, str], state_keys: dict[str, str],
               slot_state: dict[int, str], file_hashes: dict[str, str]) -> str:
    """Hash of type, version, code, config and the keys of the inputs (state inputs by version seen)."""
    card_type = pc.card_type
    inputs = {b.port: value_keys[b.slot] for b in pc.bindings if b.slot not in slot_state}
    lineage: dict[str, Any] = {
        "type": card_type.id,
        "version": card_type.version,
        "code": card_type.code_hash,
        "config": pc.config.model_dump(mode="json"),
        "inputs": inputs,
        "states": state_keys,
    }
    if card_type.source_files is not None:
        lineage["files"] = {str(p): _file_hash(Path(p), file_hashes) for p in card_type.source_files(pc.config)}
    if not card_type.deterministic:
        lineage["nonce"] = uuid.uuid4().hex
    text = json.dumps(lineage, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _file_hash(path: Path, cache: dict[str, str]) -> str:
    key = str(path)
    if key not in cache:
        if not path.is_file():
            cache[key] = "missing"
        else:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            cache[key] = digest.hexdigest()
    return cache[key]
