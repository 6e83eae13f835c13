"""The version-1 pipeline file (YAML or JSON): parsing with every structural problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cardloop.errors import PipelineInvalid, Problem
from cardloop.pipeline.model import FORMAT_VERSION, Body, Card, Pipeline
from cardloop.pipeline.parsing import collector_paused, decode, parse_json, parse_yaml

CARD_KEYS = {"id", "type", "config", "inputs", "ui", "when", "body", "resources"}
BODY_KEYS = {"cards", "outputs"}
PIPELINE_KEYS = {"version", "name", "description", "cards"}


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline file (`.json` is JSON, anything else YAML); raises PipelineInvalid naming every structural
    problem, or the one reason the file cannot be read as a pipeline at all."""
    file, source = Path(path), str(path)
    if not file.is_file():
        raise PipelineInvalid([Problem(f"pipeline file '{path}' does not exist")], source)
    text = decode(file.read_bytes(), source)
    with collector_paused():
        data = parse_json(text, source) if file.suffix == ".json" else parse_yaml(text, source)
        return pipeline_from_dict(data, source=source)


def pipeline_from_dict(data: Any, source: str | None = None) -> Pipeline:
    """Build a Pipeline from parsed file content, reporting every structural problem at once."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise PipelineInvalid([Problem("a pipeline file must be a mapping with 'version' and 'cards'")], source)
    version = data.get("version")
    if version is None:
        problems.append(Problem(f"the pipeline has no 'version' field; add 'version: {FORMAT_VERSION}'",
                                field="version"))
    elif type(version) is not int:  # `true` and `1.0` equal 1 in Python, but are no version number
        problems.append(Problem(f"the pipeline's 'version' is {version!r}, not a whole number; write 'version: "
                                f"{FORMAT_VERSION}'", field="version"))
    elif version != FORMAT_VERSION:
        problems.append(Problem(f"unknown pipeline format version {version!r}; this cardloop reads version "
                                f"{FORMAT_VERSION}", field="version"))
    for key in ("name", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            problems.append(Problem(f"the pipeline's '{key}' is {data[key]!r}, not a string; quote it",
                                    field=key))
    for key in sorted(set(data) - PIPELINE_KEYS):
        problems.append(Problem(f"unknown top-level field '{key}'; valid fields: {', '.join(sorted(PIPELINE_KEYS))}",
                                field=key))
    raw_cards = data.get("cards")
    if not isinstance(raw_cards, list):
        problems.append(Problem("'cards' must be a list of cards", field="cards"))
        raw_cards = []
    cards = [card for i, raw in enumerate(raw_cards) if (card := _card_from_dict(raw, i, problems))]
    if problems:
        raise PipelineInvalid(problems, source)
    return Pipeline(name=data.get("name") or "pipeline", cards=cards, description=data.get("description") or "",
                    version=version)


def _card_from_dict(raw: Any, position: int, problems: list[Problem], scope: str = "") -> Card | None:
    where = f"{scope}card #{position + 1}"
    if not isinstance(raw, dict):
        problems.append(Problem(f"{where} must be a mapping with 'id' and 'type'"))
        return None
    card_id = raw.get("id")
    if isinstance(card_id, str) and card_id:
        where = f"{scope}card '{card_id}'"
    else:
        problems.append(Problem(f"{where} has no 'id'"))
        card_id = None
    if not isinstance(raw.get("type"), str):
        problems.append(Problem(f"{where} has no 'type'", card=card_id, field="type"))
    for key in sorted(set(raw) - CARD_KEYS):
        problems.append(Problem(f"{where}: unknown field '{key}'; valid fields: {', '.join(sorted(CARD_KEYS))}",
                                card=card_id, field=key))
    for key, kind in (("config", dict), ("inputs", dict), ("ui", dict), ("when", dict), ("resources", dict)):
        if raw.get(key) is not None and not isinstance(raw[key], kind):
            problems.append(Problem(f"{where}: '{key}' must be a mapping", card=card_id, field=key))
    if card_id is None or not isinstance(raw.get("type"), str):
        return None
    inputs = raw.get("inputs") if isinstance(raw.get("inputs"), dict) else {}
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    ui = raw.get("ui") if isinstance(raw.get("ui"), dict) else None
    when = raw.get("when") if isinstance(raw.get("when"), dict) else None
    resources = dict(raw["resources"]) if isinstance(raw.get("resources"), dict) else None
    body = _body_from_dict(raw["body"], f"{scope}{card_id}.", card_id, problems) if "body" in raw else None
    return Card(id=card_id, type=raw["type"], config=dict(config), inputs={str(k): v for k, v in inputs.items()},
                ui=ui, when=when, body=body, resources=resources)


def _body_from_dict(raw: Any, scope: str, card_id: str, problems: list[Problem]) -> Body | None:
    """A block's body: {cards: [...], outputs: {port: "<card>.<port>"}}; its cards' problems are named by the
    block path (`epochs.batches.card 'fwd'`)."""
    where = f"block '{scope[:-1]}'"
    if not isinstance(raw, dict):
        problems.append(Problem(f"{where}: 'body' must be a mapping with 'cards' and 'outputs'", card=card_id,
                                field="body"))
        return None
    for key in sorted(set(raw) - BODY_KEYS):
        problems.append(Problem(f"{where}: unknown body field '{key}'; valid fields: {', '.join(sorted(BODY_KEYS))}",
                                card=card_id, field=f"body.{key}"))
    raw_cards, outputs = raw.get("cards"), raw.get("outputs") or {}
    if not isinstance(raw_cards, list):
        problems.append(Problem(f"{where}: 'body.cards' must be a list of cards", card=card_id, field="body.cards"))
        raw_cards = []
    if not isinstance(outputs, dict) or not all(isinstance(v, str) for v in outputs.values()):
        problems.append(Problem(f"{where}: 'body.outputs' must map each output port to '<body card>.<port>'",
                                card=card_id, field="body.outputs"))
        outputs = {}
    cards = [card for i, item in enumerate(raw_cards) if (card := _card_from_dict(item, i, problems, scope))]
    return Body(cards, {str(k): v for k, v in outputs.items()})


def dump_pipeline(pipeline: Pipeline, fmt: str = "yaml") -> str:
    data = pipeline.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    data["cards"] = _compact(data["cards"])
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120)


class _OneLine(dict):
    """A card written on one line (`- {id: fwd, type: training_forward, inputs: {...}}`)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_OneLine, lambda dumper, data: dumper.represent_mapping(
    "tag:yaml.org,2002:map", data.items(), flow_style=True))

ONE_LINE = 110  # a card this long or shorter as flow YAML is written on one line


def _compact(cards: list[dict]) -> list[dict]:
    """Cards that fit on a line as one line each, a block's body likewise: a loop reads like the script it is."""
    out = []
    for card in cards:
        if "body" in card:
            body = dict(card["body"], cards=_compact(card["body"]["cards"]))
            out.append({**card, "body": body})
        elif len(yaml.safe_dump(card, default_flow_style=True, width=10_000, sort_keys=False)) <= ONE_LINE:
            out.append(_OneLine(card))
        else:
            out.append(card)
    return out


def save_pipeline(pipeline: Pipeline, path: str | Path) -> Path:
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(dump_pipeline(pipeline, "json" if file.suffix == ".json" else "yaml"), encoding="utf-8")
    return file
