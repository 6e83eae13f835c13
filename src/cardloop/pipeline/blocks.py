"""Blocks: validation of a block's body, its ports, its loop settings and `when` conditions (docs/blocks.md).
Torch-free.

A block is checked once, whatever the number of its iterations. Its body is checked as a pipeline of its own
whose first card is the block's **ports card**: a stand-in, with the block's id, whose outputs are the ports a
body card may use (`<block>.<input>`, `<block>.iteration`, the carried values and the item ports of `over`).
What checking learns is a `BlockType`: a card type made for this one block, whose inputs are the block's inputs
and whose outputs are its `outputs` (training state continued, collected lists, carried values); the engine
plans the block as one card of that type and runs its body with `engine/blocks.py`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Literal, NamedTuple

from pydantic import Field, ValidationError

from cardloop.cards.bounds import MAX_INT64
from cardloop.cards.spec import CardConfig, CardType, NoConfig, Port
from cardloop.errors import Problem
from cardloop.kinds import ANY, SCALAR, STATE_KINDS
from cardloop.pipeline.model import BLOCK_TYPE, Card, Pipeline, split_ref

ITERATION = "iteration"  # the port of a block's current iteration number, from 0
OVER = "over"  # the block input that makes it loop once per item of an iterator
LIST_PREFIX = "list:"  # a collected output's kind: `list:<kind of one iteration's value>`
COMPARISONS = {"equals": "==", "not_equals": "!=", "above": ">", "below": "<", "at_least": ">=", "at_most": "<="}


class Carry(CardConfig):
    """A carried value: `init` in the first iteration, then the body output `next` of the iteration before."""

    init: Any = None
    next: str = Field(description="The body output ('<card>.<port>') that the next iteration receives.")


class LoopConfig(CardConfig):
    """How many times a block runs its body, and what it carries from one iteration to the next."""

    times: int | None = Field(default=None, ge=0, le=MAX_INT64, description="Run the body this many times.")
    max: int | None = Field(default=None, ge=1, le=MAX_INT64,
                            description="The most iterations a loop with `until` runs.")
    until: str | None = Field(default=None, description="Stop after the iteration in which this body output "
                                                        "('<card>.<port>', a bool or number) is true.")
    carry: dict[str, Carry] = Field(default_factory=dict, description="Values handed from one iteration to the "
                                                                      "next: {name: {init, next}}.")


# --- conditions ------------------------------------------------------------------------------------------


class Every(NamedTuple):
    """Holds when the count of `loop` (its depth in the block path: 0 is the outermost) is a multiple of k."""

    k: int
    depth: int
    whole_run: bool


class Finite(NamedTuple):
    """Holds when the value at (position, port) of the scope is finite."""

    position: int
    port: str


class Compare(NamedTuple):
    """Holds when the value at (position, port) compares to `value` with `op` (a key of COMPARISONS)."""

    position: int
    port: str
    op: str
    value: Any


class IterationIs(NamedTuple):
    """Holds when the 0-based iteration of the loop at `depth` compares to `value` with `op`."""

    depth: int
    op: str
    value: Any


class AllOf(NamedTuple):
    conditions: tuple


class AnyOf(NamedTuple):
    """Holds when one of `conditions` holds (every k iterations, or at the epoch's last batch)."""

    conditions: tuple


Condition = Every | Finite | Compare | IterationIs | AllOf | AnyOf


def condition_sources(condition: Condition) -> list[tuple[int, str]]:
    """The (position, port) of every output a condition reads, in order."""
    if hasattr(condition, "conditions"):
        return [source for part in condition.conditions for source in condition_sources(part)]
    if hasattr(condition, "position"):
        return [(condition.position, condition.port)]
    return []


def condition_holds(condition: Condition, slot_of: Any, slots: list[Any], counts: list[int],
                    totals: list[int]) -> bool | None:
    """Whether the condition holds; None when a value it reads was skipped. `slot_of(position, port)` is the slot
    of an output; `counts` the 1-based iteration count of each enclosing loop, `totals` each loop's count over
    the whole run."""
    if type(condition) is Every:
        count = (totals if condition.whole_run else counts)[condition.depth]
        return count % condition.k == 0
    if type(condition) is IterationIs:
        return _compare(counts[condition.depth] - 1, condition.op, condition.value)
    if type(condition) is AllOf:
        results = [condition_holds(c, slot_of, slots, counts, totals) for c in condition.conditions]
        return None if None in results else all(results)
    if type(condition) is AnyOf:  # one that holds is enough; else a skipped value read skips the card
        results = [condition_holds(c, slot_of, slots, counts, totals) for c in condition.conditions]
        return True if True in results else (None if None in results else False)
    value = slots[slot_of(condition.position, condition.port)]
    if value is SKIPPED:
        return None
    if type(condition) is Finite:
        return math.isfinite(float(value))
    if hasattr(value, "item"):  # a 0-d tensor or numpy scalar
        value = value.item()
    return _compare(value, condition.op, condition.value)


def _compare(value: Any, op: str, other: Any) -> bool:
    try:
        if op == "equals":
            return value == other
        if op == "not_equals":
            return value != other
        if op == "above":
            return value > other
        if op == "below":
            return value < other
        if op == "at_least":
            return value >= other
        return value <= other
    except TypeError:
        return False


class Skipped:
    """Stands in a slot for the value of a card that was skipped (its `when` did not hold)."""

    def __repr__(self) -> str:
        return "<skipped>"

    def __reduce__(self) -> str:
        return "SKIPPED"


SKIPPED = Skipped()


# --- the block type ----------------------------------------------------------------------------------------

OutputRole = Literal["state", "collect", "carry", "last"]


@dataclass(frozen=True)
class BlockOutput:
    """One of the block's outputs: where the body makes it and what the block does with it."""

    name: str
    role: OutputRole  # state: the state after the last iteration; collect: a list; carry: the carried value
    position: int  # in the body (0 is the ports card)
    port: str


@dataclass(frozen=True)
class BlockSpec:
    """What checking learned of one block, for the engine."""

    path: tuple[str, ...]  # the block ids from the outermost block to this one
    card: Card
    config: LoopConfig
    body: Pipeline  # the ports card, then the body's cards
    checked: list  # CheckedCard of each card of `body`
    ports_type: CardType
    outputs: tuple[BlockOutput, ...]
    carry: tuple[tuple[str, Any, int, str], ...]  # (name, init, position, port of `next`)
    conditions: dict[int, Condition]  # by body position
    until: tuple[int, str] | None  # (position, port)
    item_ports: tuple[str, ...]
    digest: str  # the body's content: card types, their code, configs, links, conditions (nested blocks too)

    @property
    def static_path(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class BlockType(CardType):
    """The card type of one block: its ports are the block's own. Its `code_hash` covers the body."""

    spec: BlockSpec | None = field(default=None, compare=False)

    @property
    def code_hash(self) -> str:
        return self.spec.digest if self.spec is not None else ""


def cards_within(cards: Iterable[tuple[CardType, Any]]) -> Iterator[tuple[CardType, Any]]:
    """These (card type, config) pairs and those of the cards in the blocks' bodies, nested bodies included."""
    for card_type, config in cards:
        yield card_type, config
        if isinstance(card_type, BlockType) and card_type.spec is not None:
            yield from cards_within((c.card_type, c.config) for c in card_type.spec.checked[1:])


def is_block(card: Card) -> bool:
    return card.type == BLOCK_TYPE or card.body is not None


def _ports_run(config: Any) -> dict:  # the ports card never runs: the block runtime fills its slots
    raise RuntimeError("a block's ports card does not run")


def _run_block(spec: BlockSpec, config: Any, ctx: Any, **inputs: Any) -> dict:
    """A block's run function: its body's iterations (engine/blocks.py, imported when a block runs)."""
    from cardloop.engine.blocks import run_block

    return run_block(spec, config, ctx, **inputs)


def check_block(card: Card, sources: dict[str, Port], path: tuple[str, ...], check_body: Any,
                problems: list[Problem]) -> tuple[BlockType, LoopConfig] | None:
    """Check a block whose input links resolved to the output ports `sources` (by input port); append every
    problem, named by the block path, to `problems`. `check_body(pipeline, extra_types, path)` checks a body
    as a pipeline (pipeline/validate.py) and returns (problems, checked). Returns the block's type and config,
    or None when the block is too broken to have one."""
    where = ".".join(path)
    try:
        config = LoopConfig.model_validate(card.config or {})
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"])
            message = f"unknown config field '{name}'; valid fields: {', '.join(LoopConfig.model_fields)}" \
                if error["type"] == "extra_forbidden" else f"config field '{name}' is {error.get('input')!r}: " \
                f"{error['msg'].lower()}"
            problems.append(Problem(f"{where}: {message}", card=where, field=name))
        return None
    if card.body is None:
        problems.append(Problem(f"{where}: a '{BLOCK_TYPE}' block needs a 'body' with its cards", card=where,
                                field="body"))
        return None
    if card.type != BLOCK_TYPE:
        problems.append(Problem(f"{where}: only a '{BLOCK_TYPE}' card has a 'body' (this card is of type "
                                f"'{card.type}')", card=where, field="type"))
        return None
    over = sources.get(OVER)
    items = tuple(getattr(over, "items", ()) or ()) if over is not None else ()
    if over is not None and not items:
        problems.append(Problem(f"{where}: input '{OVER}' takes an iterator output (such as "
                                f"training_batch_iterator's 'batches'), not '{card.inputs[OVER]}' of kind "
                                f"'{over.kind}'", card=where, field=OVER))
    if config.until is not None and config.times is None and config.max is None and over is None:
        problems.append(Problem(f"{where}: a loop with 'until' needs a bound: 'times', 'max' or an 'over' input",
                                card=where, field="until"))
    if config.times is not None and over is not None:
        problems.append(Problem(f"{where}: a loop runs 'times' or 'over' an iterator, not both", card=where,
                                field="times"))
    ports = [Port(name, source.kind) for name, source in sources.items() if name != OVER]
    ports.append(Port(ITERATION, SCALAR, "the iteration's number, from 0"))
    ports += [Port(item.name, item.kind, item.description) for item in items]
    carry_kinds = {name: _carried_kind(card, spec.next) for name, spec in config.carry.items()}
    ports += [Port(name, kind) for name, kind in carry_kinds.items()]
    names = [p.name for p in ports]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(Problem(f"{where}: '{card.id}.{name}' would name two block ports; rename the input or "
                                "carried value", card=where, field=name))
    ports_type = CardType(id=f"{BLOCK_TYPE}-ports:{where}", title=f"{card.id} (ports)", category="blocks",
                          description="", inputs=(), outputs=tuple(ports), config_model=NoConfig, run=_ports_run)
    body = Pipeline(name=where, cards=[Card(id=card.id, type=ports_type.id), *card.body.cards])
    ids = [c.id for c in card.body.cards]
    if card.id in ids:
        problems.append(Problem(f"{where}: a body card may not have the block's own id '{card.id}'", card=where,
                                field="body"))
    body_problems, checked = check_body(body, {ports_type.id: ports_type}, path)
    problems += body_problems
    if body_problems or len(checked) != len(body.cards):
        return None
    positions = {c.id: i for i, c in enumerate(body.cards)}
    outputs = _outputs(card, body, checked, positions, config, carry_kinds, where, problems)
    carry = []
    for name, spec in config.carry.items():
        found = _body_ref(spec.next, positions, checked, where, f"carry.{name}.next", problems)
        if found:
            carry.append((name, spec.init, *found))
    until = _body_ref(config.until, positions, checked, where, "until", problems) if config.until else None
    conditions = {}
    for position, body_card in enumerate(body.cards):
        if body_card.when is not None and position > 0:
            condition = parse_condition(body_card.when, f"{where}.{body_card.id}", positions, position, checked,
                                        path, problems)
            if condition is not None:
                conditions[position] = condition
    if problems:
        return None
    spec = BlockSpec(path, card, config, body, checked, ports_type, tuple(outputs), tuple(carry), conditions,
                     until, tuple(item.name for item in items), _digest(card, checked))
    block_type = BlockType(
        id=f"{BLOCK_TYPE}:{where}", title=card.id, category="blocks", description="a loop block",
        inputs=tuple(Port(name, source.kind) for name, source in sources.items()),
        outputs=tuple(_output_port(o, checked, body, ports_type) for o in outputs),
        config_model=LoopConfig, run=functools.partial(_run_block, spec),
        deterministic=all(c.card_type.deterministic for c in checked[1:]),
        mutates_state=any(c.card_type.mutates_state for c in checked[1:]), wants_context=True, spec=spec,
        source_files=_body_files(checked, "source_files"), code_files=_body_files(checked, "code_files"))
    return block_type, config


def _carried_kind(card: Card, ref: str) -> str:
    """The kind of a carried value: that of the body output `next` names, when its card type says it."""
    from cardloop.cards.registry import default_registry

    parts = split_ref(ref)
    maker = next((c for c in card.body.cards if parts and c.id == parts[0]), None) if card.body else None
    registry = default_registry()
    if maker is None or maker.type not in registry:
        return ANY
    port = registry.get(maker.type).output(parts[1])
    return port.kind if port is not None else ANY


def _body_ref(ref: str, positions: dict[str, int], checked: list, where: str, field: str,
              problems: list[Problem]) -> tuple[int, str] | None:
    """(position, port) of a `<card>.<port>` of the body."""
    parts = split_ref(ref)
    if parts is None:
        problems.append(Problem(f"{where}: {field} is {ref!r}; write it as '<body card>.<port>'", card=where,
                                field=field))
        return None
    position = positions.get(parts[0])
    if position is None:
        problems.append(Problem(f"{where}: {field} uses '{ref}', but the block's body has no card '{parts[0]}'",
                                card=where, field=field))
        return None
    if checked[position].card_type.output(parts[1]) is None:
        valid = ", ".join(p.name for p in checked[position].card_type.outputs)
        problems.append(Problem(f"{where}: {field} uses '{ref}', but card '{parts[0]}' has no output "
                                f"'{parts[1]}'; its outputs are: {valid}", card=where, field=field))
        return None
    return position, parts[1]


def _outputs(card: Card, body: Pipeline, checked: list, positions: dict[str, int], config: LoopConfig,
             carry_kinds: dict[str, str], where: str, problems: list[Problem]) -> list[BlockOutput]:
    outputs = []
    for name, ref in card.body.outputs.items():
        found = _body_ref(str(ref), positions, checked, where, f"output '{name}'", problems)
        if found is None:
            continue
        port = checked[found[0]].card_type.output(found[1])
        if name in config.carry:
            problems.append(Problem(f"{where}: output '{name}' is also a carried value; a carried value is an "
                                    "output of the block already", card=where, field=name))
            continue
        if port.kind in STATE_KINDS:
            origin = _state_origin(checked, found)
            outputs.append(BlockOutput(name, "state" if origin is not None else "last", *found))
        else:
            outputs.append(BlockOutput(name, "collect", *found))
    for name in config.carry:
        outputs.append(BlockOutput(name, "carry", 0, name))
    return outputs


def _state_origin(checked: list, ref: tuple[int, str]) -> str | None:
    """The block input a body's state output continues (following `state_of` links back to the ports card), or
    None for a state the body makes itself."""
    position, port = ref
    while position > 0:
        output = checked[position].card_type.output(port)
        if output is None or output.state_of is None:
            return None
        source = checked[position].sources.get(output.state_of)
        if source is None:
            return None
        position, port = source
    return port if position == 0 else None


def _output_port(output: BlockOutput, checked: list, body: Pipeline, ports_type: CardType) -> Port:
    card_type = checked[output.position].card_type
    port = card_type.output(output.port)
    if output.role == "state":
        return Port(output.name, port.kind, state_of=_state_origin(checked, (output.position, output.port)))
    if output.role == "collect":
        return Port(output.name, LIST_PREFIX + port.kind, f"'{output.port}' of every iteration", metric=False)
    return Port(output.name, port.kind)


def parse_condition(when: Any, where: str, positions: dict[str, int], position: int, checked: list,
                    loops: tuple[str, ...], problems: list[Problem]) -> Condition | None:
    """A `when` mapping as a Condition; refs must name outputs of cards above `position` in the same scope,
    `of` a loop that encloses the card (`loops`, outermost first)."""
    def bad(message: str) -> None:
        problems.append(Problem(f"{where}: when: {message}", card=where, field="when"))

    if not isinstance(when, dict) or not when:
        bad(f"{when!r} is not a condition; use every/of, finite, value with a comparison, all or any")
        return None
    for key, combined in (("all", AllOf), ("any", AnyOf)):
        if key not in when:
            continue
        if set(when) != {key} or not isinstance(when[key], list) or not when[key]:
            bad(f"'{key}' takes a non-empty list of conditions, and nothing beside it")
            return None
        parts = [parse_condition(w, where, positions, position, checked, loops, problems) for w in when[key]]
        return combined(tuple(parts)) if None not in parts else None
    if "every" in when:
        extra = set(when) - {"every", "of", "global"}
        k, of = when.get("every"), when.get("of")
        if extra:
            bad(f"unknown field(s) {sorted(extra)} beside 'every'; valid: every, of, global")
        elif type(k) is not int or k < 1:
            bad(f"'every' is {k!r}; it takes a whole number of iterations, 1 or more")
        elif of not in loops:
            valid = ", ".join(loops) or "none: the card is in no loop"
            bad(f"'of' is {of!r}; it names a loop that encloses the card (here: {valid})")
        elif not isinstance(when.get("global", False), bool):
            bad("'global' is true or false")
        else:
            return Every(k, loops.index(of), when.get("global", False))
        return None
    if "finite" in when:
        if set(when) != {"finite"}:
            bad("'finite' takes one output and nothing beside it")
            return None
        found = _scope_ref(when["finite"], positions, position, checked, bad)
        return Finite(*found) if found else None
    if "value" in when:
        ops = [key for key in when if key in COMPARISONS]
        extra = set(when) - {"value", *COMPARISONS}
        if extra or len(ops) != 1:
            bad(f"'value' takes exactly one comparison, one of {', '.join(COMPARISONS)}")
            return None
        parts = split_ref(when["value"])
        if parts is not None and parts[1] == ITERATION and parts[0] in loops:  # any enclosing loop's number
            return IterationIs(loops.index(parts[0]), ops[0], when[ops[0]])
        found = _scope_ref(when["value"], positions, position, checked, bad)
        return Compare(*found, ops[0], when[ops[0]]) if found else None
    bad(f"unknown condition {sorted(when)}; use every/of, finite, value with a comparison, all or any")
    return None


def _scope_ref(ref: Any, positions: dict[str, int], position: int, checked: list, bad: Any) -> tuple | None:
    parts = split_ref(ref)
    if parts is None or parts[0] not in positions:
        bad(f"{ref!r} is not an output of a card above it in the same block ('<card>.<port>')")
        return None
    source = positions[parts[0]]
    if source >= position:
        bad(f"'{ref}' comes from a card that runs after it; a condition reads cards above it")
        return None
    if checked[source].card_type.output(parts[1]) is None:
        bad(f"card '{parts[0]}' has no output '{parts[1]}'")
        return None
    return source, parts[1]


def _body_files(checked: list, attribute: str) -> Callable[[Any], list] | None:
    """The block type's `source_files` or `code_files`: those of its body cards (nested blocks' bodies too),
    whose content hashes then enter the block's cache key as a top-level card's do (a data file a body card
    reads, the card file of a model class); None when no body card has any."""
    found = [(getattr(c.card_type, attribute), c.config) for c in checked[1:]
             if getattr(c.card_type, attribute) is not None]
    return functools.partial(_files_of, tuple(found)) if found else None


def _files_of(found: tuple, config: Any) -> list:
    return [path for files, body_config in found for path in files(body_config)]


def _digest(card: Card, checked: list) -> str:
    """A digest of what the body computes: each card's type, the type's code, its config, links, condition and
    (for a nested block) its own digest, and the block's outputs."""
    parts = [json.dumps({name: str(ref) for name, ref in card.body.outputs.items()}, sort_keys=True)]
    for body_card, found in zip(card.body.cards, checked[1:]):
        parts.append(json.dumps([body_card.id, found.card_type.id, found.card_type.code_hash,
                                 found.card_type.version, body_card.config, body_card.inputs, body_card.when],
                                sort_keys=True, default=str))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
