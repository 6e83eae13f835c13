"""Validation: every problem of a pipeline at once, each naming the card and the port or config field."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import ValidationError

from cardloop.cards.registry import Registry, default_registry
from cardloop.cards.spec import CONFIG_RULE, CardConfig, CardType, Port
from cardloop.errors import PipelineInvalid, Problem
from cardloop.kinds import ANY, compatible
from cardloop.pipeline.blocks import check_block, is_block, parse_condition
from cardloop.pipeline.model import CARD_ID, Card, Pipeline, split_ref
from cardloop.pipeline.parsing import collector_paused
from cardloop.pipeline.resources import resource_problems


class CheckedCard(NamedTuple):
    """What validation learned of a valid card, for planning: its type, its parsed config, for each connected
    input port the position and output port of the card that feeds it, and (a top-level card's) parsed `when`."""

    card_type: CardType
    config: CardConfig
    sources: dict[str, tuple[int, str]]
    condition: Any = None


def validate_pipeline(pipeline: Pipeline, registry: Registry | None = None) -> list[Problem]:
    """All problems found in the pipeline; an empty list means it can run."""
    return _check(pipeline, registry or default_registry())[0]


def check_pipeline(pipeline: Pipeline, registry: Registry | None = None,
                   source: str | None = None) -> list[CheckedCard]:
    """Raise PipelineInvalid with every problem, if there is any; else return what planning needs of each card."""
    problems, checked = _check(pipeline, registry or default_registry())
    if problems:
        raise PipelineInvalid(problems, source)
    return checked


def parse_config(card: Card, card_type: CardType) -> CardConfig:
    """The card's validated config object (defaults filled in)."""
    return card_type.config_model.model_validate(card.config or {})


def _check(pipeline: Pipeline, registry: Registry) -> tuple[list[Problem], list[CheckedCard]]:
    with collector_paused():
        return _check_cards(pipeline, registry)


def _check_cards(pipeline: Pipeline, registry: Registry, extra_types: dict[str, CardType] | None = None,
                 path: tuple[str, ...] = (), outside: frozenset[str] = frozenset()) -> tuple[list[Problem], list[CheckedCard]]:
    """Check a pipeline, or (with `path`, the ids of the enclosing blocks) a block's body, whose first card is
    the block's ports card, of a type in `extra_types`; `outside`: the ids of the cards of the enclosing scopes."""
    problems: list[Problem] = []
    if not pipeline.cards:
        problems.append(Problem("the pipeline has no cards; add at least one", field="cards"))
    positions: dict[str, int] = {}
    for position, card in enumerate(pipeline.cards):
        if not CARD_ID.match(card.id):
            problems.append(Problem(f"card id '{card.id}' is not valid: use letters, digits, '_' and '-', "
                                    "starting with a letter or '_'", card=card.id, field="id"))
        if card.id in positions:
            problems.append(Problem(f"card id '{card.id}' is used twice (positions {positions[card.id] + 1} and "
                                    f"{position + 1}); card ids must be unique", card=card.id, field="id"))
        else:
            positions[card.id] = position
    types = _Types(registry, extra_types)
    types.elsewhere = _elsewhere(pipeline, path, outside)
    configs = _Configs()
    checked: list[CheckedCard] = []
    for position, card in enumerate(pipeline.cards):
        problems += resource_problems(card)
        if is_block(card) and not (path and position == 0):
            problems += _block_problems(card, position, pipeline, positions, types, path, registry, checked,
                                        outside | set(positions))
            continue
        condition = _condition(card, position, positions, checked, path, problems)
        found = types.get(card.type)
        if found is None:
            problems.append(Problem(f"card '{card.id}': {registry.unknown_message(card.type)}",
                                    card=card.id, field="type"))
            continue
        card_type = found[0]
        config = configs.parse(card, card_type)
        if isinstance(config, ValidationError):
            problems += _config_problems(card, card_type, config)
        sources: dict[str, tuple[int, str]] = {}
        problems += _input_problems(card, found, position, pipeline, positions, types, sources)
        checked.append(CheckedCard(card_type, config, sources, condition))
    return problems, checked


def _condition(card: Card, position: int, positions: dict[str, int], checked: list[CheckedCard],
               path: tuple[str, ...], problems: list[Problem]) -> Any:
    """A card's `when`, checked. Inside a block the block keeps it (pipeline/blocks.py); a top-level card's is
    returned for planning, once every card above it is valid (its refs are read from them)."""
    if card.when is None:
        return None
    if path:
        parse_condition(card.when, card.id, positions, position, checked, path, problems)
        return None
    if len(checked) != position:
        return None
    return parse_condition(card.when, card.id, positions, position, checked, (), problems)


def _elsewhere(pipeline: Pipeline, path: tuple[str, ...], outside: frozenset[str]) -> dict[str, str]:
    """For the ids of cards a card of this scope cannot link to (inside its blocks, outside its block): why not,
    and what to write instead."""
    hints = {}
    if path:
        block = path[-1]
        for card_id in outside:
            hints[card_id] = (f"'{card_id}' is outside block '{block}': bring its output in through an input of the "
                              f"block ('inputs: {{name: {card_id}.<port>}}' on '{block}') and use '{block}.name'")
    for card in pipeline.cards:
        if card.body is not None and not (path and card is pipeline.cards[0]):
            for inner in _body_ids(card):
                hints[inner] = (f"'{inner}' is inside block '{card.id}': use an output of the block "
                                f"('{card.id}.<port>', each named in its body's outputs)")
    return hints


def _body_ids(card: Card) -> list[str]:
    ids = []
    for inner in card.body.cards if card.body else ():
        ids += [inner.id, *_body_ids(inner)]
    return ids


def _block_problems(card: Card, position: int, pipeline: Pipeline, positions: dict[str, int], types: _Types,
                    path: tuple[str, ...], registry: Registry, checked: list[CheckedCard],
                    outside: frozenset[str]) -> list[Problem]:
    """Check a block: its input links (any kind, each taking its source's), then its body and settings. Appends
    what planning needs to `checked`, and records the block's type for the cards below it."""
    problems: list[Problem] = []
    condition = _condition(card, position, positions, checked, path, problems) if not path else None
    loose = CardType(id="loop", title="", category="", description="", config_model=_NoCheck,
                     inputs=tuple(Port(name, ANY) for name in card.inputs), outputs=(), run=_never)
    sources: dict[str, tuple[int, str]] = {}
    problems += _input_problems(card, (loose, {p.name: p for p in loose.inputs}, {}), position, pipeline,
                                positions, types, sources)
    ports = {port: types.get(pipeline.cards[src].type, pipeline.cards[src].id)[2][out]
             for port, (src, out) in sources.items()}

    def check_body(body: Pipeline, extra: dict[str, CardType], body_path: tuple[str, ...]):
        found, body_checked = _check_cards(body, registry, extra, body_path, frozenset(outside))
        prefix = ".".join(body_path)
        return [p if p.card and "." in p.card else
                Problem(f"{prefix}.{p.card}: {p.message.removeprefix(f'{p.card}: ')}" if p.card
                        else f"{prefix}: {p.message}", card=f"{prefix}.{p.card}" if p.card else prefix, field=p.field)
                for p in found], body_checked

    if len(sources) == len(card.inputs):
        made = check_block(card, ports, (*path, card.id), check_body, problems)
        types.add(card.id, made and made[0])  # a broken block: the cards below are not told about its ports
        if made is not None and not problems:
            checked.append(CheckedCard(made[0], made[1], sources, condition))
    else:
        types.add(card.id, None)
    return problems


class _NoCheck(CardConfig):
    model_config = {"extra": "allow"}


def _never(config: Any, **inputs: Any) -> dict:
    raise RuntimeError("never runs")


class _Types:
    """Card types by id, with their ports by name, looked up once per validation; a block's type by its card."""

    def __init__(self, registry: Registry, extra: dict[str, CardType] | None = None) -> None:
        self.registry = registry
        self._found: dict[str, tuple[CardType, dict[str, Port], dict[str, Port]] | None] = {}
        self._blocks: dict[str, tuple[CardType, dict[str, Port], dict[str, Port]] | None] = {}
        self.elsewhere: dict[str, str] = {}  # card ids of other scopes: why a link to them is not allowed
        for card_type in (extra or {}).values():
            self._found[card_type.id] = self._entry(card_type)

    def add(self, card_id: str, block_type: CardType | None) -> None:
        """The type of the block with this id (its ports are its own); None for a block too broken to have one."""
        self._blocks[card_id] = block_type and self._entry(block_type)

    def get(self, type_id: str, card_id: str | None = None) -> tuple[CardType, dict[str, Port], dict[str, Port]] | None:
        """(card type, input ports, output ports), or None for an unknown type."""
        if card_id is not None and card_id in self._blocks:
            return self._blocks[card_id]
        if type_id not in self._found:
            card_type = self.registry.get(type_id) if type_id in self.registry else None
            self._found[type_id] = card_type and self._entry(card_type)
        return self._found[type_id]

    @staticmethod
    def _entry(card_type: CardType) -> tuple[CardType, dict[str, Port], dict[str, Port]]:
        return card_type, {p.name: p for p in card_type.inputs}, {p.name: p for p in card_type.outputs}


class _Configs:
    """Parses configs, once for all the cards whose config is the same (the unrolled steps of a loop mostly are)."""

    def __init__(self) -> None:
        self._parsed: dict[tuple, CardConfig | ValidationError] = {}

    def parse(self, card: Card, card_type: CardType) -> CardConfig | ValidationError:
        try:
            key: tuple | None = (card_type.config_model, _frozen(card.config or {}))
        except TypeError:  # a value that is not plain data: parsed alone
            key = None
        found = self._parsed.get(key) if key is not None else None
        if found is None:
            try:
                found = parse_config(card, card_type)
            except ValidationError as exc:
                found = exc
            if key is not None:
                self._parsed[key] = found
        return found


_PLAIN = (str, int, bool, type(None))


def _frozen(value: Any) -> tuple:
    """A hashable stand-in for a config value that keeps apart what validation may keep apart (1, 1.0 and True;
    a list and a tuple; -0.0 and 0.0). TypeError for anything but plain data."""
    kind = type(value)
    if kind is dict:
        return kind, tuple((_frozen(k), _frozen(v)) for k, v in value.items())
    if kind is list or kind is tuple:
        return kind, tuple(_frozen(v) for v in value)
    if kind is float:
        return kind, repr(value)
    if kind in _PLAIN:
        return kind, value
    raise TypeError(f"{kind.__name__} is not plain data")


def _config_problems(card: Card, card_type: CardType, exc: ValidationError) -> list[Problem]:
    valid = ", ".join(card_type.config_model.model_fields) or "none"
    return [Problem(_config_message(card, error, valid), card=card.id,
                    field=".".join(str(p) for p in error["loc"]) or None)
            for error in exc.errors()]


def _config_message(card: Card, error: dict[str, Any], valid_fields: str) -> str:
    field = ".".join(str(p) for p in error["loc"])
    where = f"card '{card.id}' ({card.type})"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown config field '{field}'; valid fields: {valid_fields}"
    if error["type"] == "missing":
        return f"{where}: config field '{field}' is required"
    if error["type"] == CONFIG_RULE:  # a card's rule between its fields: the message says it whole
        return f"{where}: config field '{field}' {error['msg']}"
    # a config validator's own sentence (a ValueError) is kept as written: it may name files and classes
    message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"].lower()
    return f"{where}: config field '{field}' is {error.get('input')!r}: {message}"


def _input_problems(card: Card, found: tuple[CardType, dict[str, Port], dict[str, Port]], position: int,
                    pipeline: Pipeline, positions: dict[str, int], types: _Types,
                    sources: dict[str, tuple[int, str]]) -> list[Problem]:
    """The problems of the card's input links; `sources` gets the (position, output port) of each valid one."""
    card_type, inputs, _ = found
    problems: list[Problem] = []
    for port_name, ref_text in card.inputs.items():
        port = inputs.get(port_name)
        ref = split_ref(ref_text)
        source_position = positions.get(ref[0], position) if ref else position
        if port is not None and source_position < position:  # the common case: a link to a card above
            source_card = pipeline.cards[source_position]
            source = types.get(source_card.type, source_card.id)
            output = source[2].get(ref[1]) if source else None
            if output is not None and compatible(output.kind, port.kind):
                sources[port_name] = (source_position, ref[1])
                continue
        problem = _link_problem(card, card_type, port_name, port, ref_text, ref, position, pipeline, positions, types)
        if problem:
            problems.append(Problem(problem, card=card.id, field=port_name))
    for port in card_type.inputs:
        if port.required and port.name not in card.inputs:
            problems.append(Problem(f"card '{card.id}' ({card.type}): required input '{port.name}' ({port.kind}) is "
                                    "not connected", card=card.id, field=port.name))
    return problems


def _link_problem(card: Card, card_type: CardType, port_name: str, port: Port | None, ref_text: Any,
                  ref: tuple[str, str] | None, position: int, pipeline: Pipeline, positions: dict[str, int],
                  types: _Types) -> str | None:
    """What is wrong with one input link, or None if nothing is (a source of unknown type is reported apart)."""
    where = f"card '{card.id}' ({card.type})"
    if port is None:
        valid = ", ".join(p.name for p in card_type.inputs) or "none"
        return f"{where} has no input port '{port_name}'; its input ports are: {valid}"
    if ref is None:
        return f"{where}: input '{port_name}' is {ref_text!r}; write it as '<card id>.<output port>'"
    if ref[0] not in positions:
        hint = types.elsewhere.get(ref[0])
        if hint is not None:
            return f"{where}: input '{port_name}' uses '{ref_text}', but {hint}"
        return f"{where}: input '{port_name}' uses '{ref_text}', but there is no card '{ref[0]}'"
    source_position = positions[ref[0]]
    if source_position >= position:
        what = "itself" if ref[0] == card.id else f"'{ref[0]}', which comes after it (position " \
            f"{source_position + 1}, this card is at {position + 1})"
        return f"{where}: input '{port_name}' uses {what}; a card may only use outputs of cards above it"
    source = pipeline.cards[source_position]
    found = types.get(source.type, source.id)
    if found is None:
        return None
    output = found[2].get(ref[1])
    if output is None:
        valid = ", ".join(p.name for p in found[0].outputs) or "none"
        return (f"{where}: input '{port_name}' uses '{ref_text}', but card '{source.id}' ({source.type}) has no "
                f"output '{ref[1]}'; its outputs are: {valid}")
    return f"{where}: input '{port_name}' takes kind '{port.kind}', but '{ref_text}' is of kind '{output.kind}'"
