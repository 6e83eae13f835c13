"""Validation: every problem of a pipeline at once, each naming the card and the port or config field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from cardloop.cards.registry import Registry, default_registry
from cardloop.cards.spec import CardConfig, CardType
from cardloop.errors import PipelineInvalid, Problem
from cardloop.kinds import compatible
from cardloop.pipeline.model import CARD_ID, Card, OutputRef, Pipeline


def validate_pipeline(pipeline: Pipeline, registry: Registry | None = None) -> list[Problem]:
    """All problems found in the pipeline; an empty list means it can run."""
    registry = registry or default_registry()
    problems: list[Problem] = []
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
    for position, card in enumerate(pipeline.cards):
        if card.type not in registry:
            problems.append(Problem(f"card '{card.id}': {registry.unknown_message(card.type)}",
                                    card=card.id, field="type"))
            continue
        card_type = registry.get(card.type)
        problems += config_problems(card, card_type)
        problems += input_problems(card, card_type, position, pipeline, positions, registry)
    return problems


def check_pipeline(pipeline: Pipeline, registry: Registry | None = None, source: str | None = None) -> None:
    """Raise PipelineInvalid with every problem, if there is any."""
    problems = validate_pipeline(pipeline, registry)
    if problems:
        raise PipelineInvalid(problems, source)


def parse_config(card: Card, card_type: CardType) -> CardConfig:
    """The card's validated config object (defaults filled in)."""
    return card_type.config_model.model_validate(card.config or {})


def config_problems(card: Card, card_type: CardType) -> list[Problem]:
    try:
        parse_config(card, card_type)
    except ValidationError as exc:
        valid = ", ".join(card_type.config_model.model_fields) or "none"
        return [Problem(_config_message(card, error, valid), card=card.id,
                        field=".".join(str(p) for p in error["loc"]) or None)
                for error in exc.errors()]
    return []


def _config_message(card: Card, error: dict[str, Any], valid_fields: str) -> str:
    field = ".".join(str(p) for p in error["loc"])
    where = f"card '{card.id}' ({card.type})"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown config field '{field}'; valid fields: {valid_fields}"
    if error["type"] == "missing":
        return f"{where}: config field '{field}' is required"
    return f"{where}: config field '{field}' is {error.get('input')!r}: {error['msg'].lower()}"


def input_problems(card: Card, card_type: CardType, position: int, pipeline: Pipeline,
                   positions: dict[str, int], registry: Registry) -> list[Problem]:
    problems: list[Problem] = []
    where = f"card '{card.id}' ({card.type})"
    for port_name, ref_text in card.inputs.items():
        port = card_type.input(port_name)
        if port is None:
            valid = ", ".join(p.name for p in card_type.inputs) or "none"
            problems.append(Problem(f"{where} has no input port '{port_name}'; its input ports are: {valid}",
                                    card=card.id, field=port_name))
            continue
        ref = OutputRef.parse(ref_text)
        if ref is None:
            problems.append(Problem(f"{where}: input '{port_name}' is {ref_text!r}; write it as "
                                    "'<card id>.<output port>'", card=card.id, field=port_name))
            continue
        if ref.card not in positions:
            problems.append(Problem(f"{where}: input '{port_name}' uses '{ref}', but there is no card "
                                    f"'{ref.card}'", card=card.id, field=port_name))
            continue
        source_position = positions[ref.card]
        if source_position >= position:
            what = "itself" if ref.card == card.id else f"'{ref.card}', which comes after it (position " \
                f"{source_position + 1}, this card is at {position + 1})"
            problems.append(Problem(f"{where}: input '{port_name}' uses {what}; a card may only use outputs of "
                                    "cards above it", card=card.id, field=port_name))
            continue
        source = pipeline.cards[source_position]
        if source.type not in registry:
            continue
        source_type = registry.get(source.type)
        output = source_type.output(ref.port)
        if output is None:
            valid = ", ".join(p.name for p in source_type.outputs) or "none"
            problems.append(Problem(f"{where}: input '{port_name}' uses '{ref}', but card '{source.id}' "
                                    f"({source.type}) has no output '{ref.port}'; its outputs are: {valid}",
                                    card=card.id, field=port_name))
        elif not compatible(output.kind, port.kind):
            problems.append(Problem(f"{where}: input '{port_name}' takes kind '{port.kind}', but '{ref}' is of kind "
                                    f"'{output.kind}'", card=card.id, field=port_name))
    for port in card_type.inputs:
        if port.required and port.name not in card.inputs:
            problems.append(Problem(f"{where}: required input '{port.name}' ({port.kind}) is not connected",
                                    card=card.id, field=port.name))
    return problems
