"""Planning: script order, training-state versions and lineage cache keys (docs/design.md §1, §2, §5). Torch-free.

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
from typing import Any, NamedTuple

from cardloop.cards.registry import Registry
from cardloop.cards.spec import CardConfig, CardContext, CardType, Port
from cardloop.kinds import GRAPH_KINDS, MODEL, STATE_KINDS
from cardloop.pipeline.blocks import condition_sources
from cardloop.pipeline.model import Card, Pipeline
from cardloop.pipeline.parsing import collector_paused
from cardloop.pipeline.validate import CheckedCard, check_pipeline


class Binding(NamedTuple):
    """Input `port` is fed by output `source_port` of the card at `source` (a position), held in `slot`."""

    port: str
    source: int
    source_port: str
    slot: int


@dataclass(slots=True)
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
    #: a top-level card's `when` (pipeline/blocks.py Condition), read through its WHEN_PORT bindings
    condition: Any = None

    @property
    def id(self) -> str:
        return self.card.id

    def sources(self) -> dict[str, str]:
        return {b.port: self.card.inputs[b.port] for b in self.bindings if b.port in self.card.inputs}


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
    _by_id: dict[str, PlannedCard] | None = field(default=None, repr=False, compare=False)
    _schedule_index: Any = field(default=None, repr=False, compare=False)  # the scheduler's (engine/resolve.py)

    def __len__(self) -> int:
        return len(self.cards)

    def card(self, card_id: str) -> PlannedCard | None:
        """The planned card with this id, if the plan has it."""
        if self._by_id is None:
            self._by_id = {pc.id: pc for pc in self.cards}
        return self._by_id.get(card_id)

    def position(self, card_id: str) -> int:
        found = self.card(card_id)
        if found is None:
            raise KeyError(f"the plan has no card '{card_id}'")
        return found.position

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
                   for b in pc.bindings if not b.port.startswith(WHEN_PORT)}
        return CardContext(pc.id, pc.card.type, pc.sources(), earlier)

    def _readers(self) -> dict[int, list[PlannedCard]]:
        if self._readers_by_slot is None:
            self._readers_by_slot = {}
            for pc in self.cards:
                for binding in pc.bindings:
                    self._readers_by_slot.setdefault(binding.slot, []).append(pc)
        return self._readers_by_slot

    def releases(self, running: list[PlannedCard] | None = None) -> dict[int, tuple[tuple[int, Any], ...]]:
        """For each card position, the value slots it is the last reader of (never training state), so an
        executor can drop them right after it, as a hand-written loop drops last step's tensors. Each slot
        comes with its hold key, (card type, port), for a value that may carry an autograd graph (a loss,
        predictions), and None otherwise.

        A hand-written loop holds such a value until the next step assigns its variable again, and so keeps
        last step's graph alive through the next forward pass. An executor should do the same: it holds the
        last released value of each key until the next one replaces it. Freed at once, last step's graph takes
        the parameters' gradient accumulators with it, and with torch 2.13 the executor then runs about 22k
        more instructions a step (~1 % of a small MLP's step; benchmarks/README.md). Callgrind shows where:
        the accumulators made anew, and torch taking the GIL back more often inside the step."""
        last: dict[int, int] = {}
        for pc in self.cards if running is None else running:
            for binding in pc.bindings:
                last[binding.slot] = pc.position
        state_slots = {pc.output_slots[port] for pc in self.cards for port in pc.state_outputs}
        hold_keys: dict[int, tuple[str, str]] = {}
        for pc in self.cards:
            for port in pc.card_type.outputs:
                if port.kind in GRAPH_KINDS and port.name not in pc.state_outputs:
                    hold_keys[pc.output_slots[port.name]] = (pc.card_type.id, port.name)
        by_card: dict[int, list[tuple[int, Any]]] = {}
        for slot, position in last.items():
            if slot not in state_slots:
                by_card.setdefault(position, []).append((slot, hold_keys.get(slot)))
        return {position: tuple(slots) for position, slots in by_card.items()}

    def state_slots(self, name: str) -> list[int]:
        """Every output slot that carries the training state `name` (where a loaded state must be put)."""
        return [slot for pc in self.cards for port, slot in pc.output_slots.items()
                if pc.state_outputs.get(port) == name]

    def truncated(self, last_position: int) -> Plan:
        """The plan up to and including the card at `last_position` (for `--until`)."""
        cards = self.cards[: last_position + 1]
        states = {name: s for name, s in self.states.items() if any(s.slot in pc.output_slots.values() for pc in cards)}
        return Plan(self.pipeline, cards, states, self.slot_count)


#: The port name of a binding that feeds a card's `when` (`when:<card>.<port>`): no card type has such a port.
WHEN_PORT = "when:"


def plan_pipeline(pipeline: Pipeline, registry: Registry | None = None, source: str | None = None) -> Plan:
    """Validate the pipeline and plan it: slots, state versions and cache keys."""
    with collector_paused():
        return _plan(check_pipeline(pipeline, registry, source), pipeline)


def _plan(checked: list[CheckedCard], pipeline: Pipeline) -> Plan:
    value_keys: list[str] = []  # by slot: the key of the value, `"<card key>:<port>"` as a JSON string
    slot_state: dict[int, str] = {}
    states: dict[str, StateInfo] = {}
    group_version: dict[str, int] = {}
    version_key: dict[tuple[str, int], str] = {}
    planned: list[PlannedCard] = []
    lineage = _Lineage()

    for position, (card, (card_type, config, sources, condition)) in enumerate(zip(pipeline.cards, checked)):
        kind = lineage.kind(card_type)
        bindings = []
        value_inputs = []  # (port, `"<port>":"<value key>"`) for the inputs that are not training state
        states_seen: dict[str, int] = {}  # the state groups this card sees, in the order of its inputs
        seen_keys = []  # (group, `"<group>":"<key of the card that made the version seen>"`)
        for port, port_json in kind.inputs:
            source = sources.get(port)
            if source is None:
                continue
            slot = planned[source[0]].output_slots[source[1]]
            bindings.append(Binding(port, source[0], source[1], slot))
            name = slot_state.get(slot)
            if name is None:
                value_inputs.append((port, f"{port_json}:{value_keys[slot]}"))
            elif states[name].group not in states_seen:
                group = states[name].group
                version = states_seen[group] = group_version[group]
                seen_keys.append((group, f'{lineage.name(group)}:"{version_key[(group, version)]}"'))
        if condition is not None:  # what `when` reads is an input of the card, its condition part of the key
            value_inputs.append((WHEN_PORT, f'"{WHEN_PORT}":{_json(card.when)}'))
            for source, port in condition_sources(condition):
                slot = planned[source].output_slots[port]
                name = f"{WHEN_PORT}{planned[source].id}.{port}"
                bindings.append(Binding(name, source, port, slot))
                value_inputs.append((name, f"{_json(name)}:{value_keys[slot]}"))
        first = len(value_keys)
        output_slots = dict(zip(kind.outputs, range(first, first + len(kind.outputs))))

        state_outputs: dict[str, str] = {}
        states_made: dict[str, int] = {}
        grown = None  # a group this card sees (the first) that gains a member
        for port in kind.state_ports:
            slot = output_slots[port.name]
            if port.state_of is not None:
                source = sources.get(port.state_of)
                name = slot_state.get(planned[source[0]].output_slots[source[1]]) if source is not None else None
                if name is not None:
                    slot_state[slot] = state_outputs[port.name] = name
                continue
            name = f"{card.id}.{port.name}"
            group = next(iter(states_seen)) if (port.kind != MODEL and states_seen) else name
            states[name] = StateInfo(name, port.kind, group, slot)
            slot_state[slot] = state_outputs[port.name] = name
            if group in group_version:
                grown = group
            else:
                group_version[group] = states_made[group] = 0

        key = lineage.key(card_type, kind, config, value_inputs, seen_keys)
        for group in states_seen:
            if card_type.mutates_state or group == grown:
                group_version[group] += 1
                states_made[group] = group_version[group]
        for made in states_made.items():
            version_key[made] = key
        for port_inner in kind.outputs_json:
            value_keys.append(f'"{key}:{port_inner}"')
        planned.append(PlannedCard(position, card, card_type, config, tuple(bindings), output_slots,
                                   state_outputs, states_seen, states_made, key, condition))

    return Plan(pipeline, planned, states, len(value_keys))


_json = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


class _Kind(NamedTuple):
    """What planning uses of a card type, worked out once per plan."""

    inputs: tuple[tuple[str, str], ...]  # (port, its name as JSON)
    outputs: tuple[str, ...]
    outputs_json: tuple[str, ...]  # each output's name as it is written inside a JSON string
    state_ports: tuple[Port, ...]  # the outputs that carry training state
    head: str  # the lineage's JSON up to the config
    tail: str  # and after the states


class _Lineage:
    """Cache keys: the sha256 of a card's lineage as canonical JSON (sorted keys, no spaces): its type, version,
    code, config, the keys of its value inputs, the keys of the state versions it sees, the content hashes of
    the files it reads (data cards) and of the user code its config names (the card file of a model class), a
    nonce (cards that are not deterministic). The text is put together from parts encoded once per plan: a
    type's fields and names, a config (shared by the cards whose config is the same). The key of a value is
    `<card key>:<port>`; the key of a state version, that of the card that made it."""

    def __init__(self) -> None:
        self._kinds: dict[str, _Kind] = {}
        self._configs: dict[int, str] = {}
        self._names: dict[str, str] = {}
        self._files: dict[str, str] = {}

    def kind(self, card_type: CardType) -> _Kind:
        found = self._kinds.get(card_type.id)
        if found is None:
            outputs = tuple(p.name for p in card_type.outputs)
            found = self._kinds[card_type.id] = _Kind(
                tuple((p.name, _json(p.name)) for p in card_type.inputs), outputs,
                tuple(_json(name)[1:-1] for name in outputs),
                tuple(p for p in card_type.outputs if p.kind in STATE_KINDS),
                '{"code":' + _json(card_type.code_hash) + ',"config":',
                ',"type":' + _json(card_type.id) + ',"version":' + _json(card_type.version) + "}")
        return found

    def key(self, card_type: CardType, kind: _Kind, config: CardConfig, inputs: list[tuple[str, str]],
            states: list[tuple[str, str]]) -> str:
        """`inputs` and `states`: (name, its `"name":value` JSON) for each value input and each state seen."""
        files = ""
        if card_type.source_files is not None or card_type.code_files is not None:
            paths = [*(card_type.source_files or _no_files)(config), *(card_type.code_files or _no_files)(config)]
            files = ',"files":' + _json({str(p): _file_hash(Path(p), self._files) for p in paths})
        nonce = "" if card_type.deterministic else f',"nonce":"{uuid.uuid4().hex}"'
        text = (f'{kind.head}{self._config(config)}{files},"inputs":{_object(inputs)}{nonce},'
                f'"states":{_object(states)}{kind.tail}')
        return hashlib.sha256(text.encode()).hexdigest()

    def name(self, name: str) -> str:
        """`name` as JSON (state group names: a few per plan)."""
        found = self._names.get(name)
        if found is None:
            found = self._names[name] = _json(name)
        return found

    def _config(self, config: CardConfig) -> str:
        found = self._configs.get(id(config))  # configs live as long as the plan: ids are not reused meanwhile
        if found is None:
            found = self._configs[id(config)] = _json(config.model_dump(mode="json"))
        return found


def _object(members: list[tuple[str, str]]) -> str:
    """A JSON object with sorted keys, from (key, its `"key":value` JSON) pairs."""
    if len(members) > 1:
        members = sorted(members)
    return "{" + ",".join([member for _, member in members]) + "}"


def _no_files(config: CardConfig) -> list[Path]:
    return []


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
