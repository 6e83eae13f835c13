"""The pipeline model: an ordered list of cards (the order is the run order) and their links."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
CARD_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: the card type of a block (a card holding a body; docs/blocks.md)
BLOCK_TYPE = "loop"


@dataclass(frozen=True)
class OutputRef:
    """An output port of a card, written `card.port` in files."""

    card: str
    port: str

    def __str__(self) -> str:
        return f"{self.card}.{self.port}"

    @classmethod
    def parse(cls, text: str) -> OutputRef | None:
        """`card.port` -> OutputRef, or None when the text is not of that form."""
        parts = split_ref(text)
        return cls(*parts) if parts else None


def split_ref(text: Any) -> tuple[str, str] | None:
    """`card.port` -> (card, port), or None when the text is not of that form."""
    if not isinstance(text, str):
        return None
    card, _, port = text.partition(".")
    return (card, port) if card and port and "." not in port else None


class _Script:
    """Cards in script order, added with `add` and `add_block` (a pipeline, or a block's body)."""

    cards: list[Card]

    def add(self, type_id: str, id: str | None = None, *, config: Mapping[str, Any] | None = None,
            when: Mapping[str, Any] | None = None, resources: Mapping[str, float] | None = None,
            **ports_and_config: Any) -> Card:
        """Append a card. Keyword arguments that are `OutputRef`s (`other["port"]`) become input links;
        the rest become config, merged with `config`. `when`: the condition it runs under (in a block);
        `resources`: what it asks an executor for instead of what its type declares (pipeline/resources.py)."""
        inputs = {k: str(v) for k, v in ports_and_config.items() if isinstance(v, OutputRef)}
        settings = {k: v for k, v in ports_and_config.items() if not isinstance(v, OutputRef)}
        card = Card(id=id or self._fresh_id(type_id), type=type_id, config={**(config or {}), **settings},
                    inputs=inputs, when=_plain_refs(when), resources=_copied(resources))
        self.cards.append(card)
        return card

    def add_block(self, id: str, *, inputs: Mapping[str, OutputRef] | None = None, times: int | None = None,
                  max: int | None = None, until: OutputRef | str | None = None,
                  carry: Mapping[str, tuple[Any, OutputRef | str]] | None = None,
                  when: Mapping[str, Any] | None = None, resources: Mapping[str, float] | None = None) -> Card:
        """Append a loop block (docs/blocks.md); add its cards with `block.body.add(...)`, name its outputs in
        `block.body.outputs`, and use its ports inside as `block["port"]`. `carry`: {name: (init, next)}.
        `resources`: what its body cards ask an executor for, unless one says otherwise (pipeline/resources.py)."""
        config: dict[str, Any] = {key: value for key, value in (("times", times), ("max", max)) if value is not None}
        if until is not None:
            config["until"] = str(until)
        if carry:
            config["carry"] = {name: {"init": init, "next": str(ref)} for name, (init, ref) in carry.items()}
        card = Card(id=id, type=BLOCK_TYPE, config=config, inputs={k: str(v) for k, v in (inputs or {}).items()},
                    when=_plain_refs(when), body=Body(), resources=_copied(resources))
        self.cards.append(card)
        return card

    def _fresh_id(self, type_id: str) -> str:
        stem = type_id.removeprefix("training_")
        taken = {card.id for card in self.cards}
        n = 0
        while f"{stem}{n}" in taken:
            n += 1
        return f"{stem}{n}"


def _copied(resources: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if resources is None else dict(resources)


def _plain_refs(when: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A `when` condition with OutputRefs written as text."""
    if when is None:
        return None
    return {key: (str(value) if isinstance(value, OutputRef) else
                  [_plain_refs(v) for v in value] if key == "all" else value) for key, value in when.items()}


@dataclass
class Body(_Script):
    """A block's sub-pipeline: its cards in script order, and the block's output ports, each mapped to
    `"<body card>.<port>"` (docs/blocks.md)."""

    cards: list[Card] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cards": [card.to_dict() for card in self.cards]}
        if self.outputs:
            data["outputs"] = {name: str(ref) for name, ref in self.outputs.items()}
        return data


@dataclass
class Card:
    """One use of a card type: an id unique in its scope, its type, config and input links; `when`, the
    condition it runs under; `body`, for a block, the cards it runs (docs/blocks.md); `resources`, what it asks
    an executor for instead of what its type declares (placement only: pipeline/resources.py)."""

    id: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    ui: dict[str, Any] | None = None
    when: dict[str, Any] | None = None
    body: Body | None = None
    resources: dict[str, float] | None = None

    def __getitem__(self, port: str) -> OutputRef:
        """`card["model"]` is a reference to this card's output port `model`, for wiring in code."""
        return OutputRef(self.id, port)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.inputs:
            data["inputs"] = dict(self.inputs)
        if self.config:
            data["config"] = dict(self.config)
        if self.when is not None:
            data["when"] = self.when
        if self.resources is not None:
            data["resources"] = dict(self.resources)
        if self.body is not None:
            data["body"] = self.body.to_dict()
        if self.ui:
            data["ui"] = dict(self.ui)
        return data


@dataclass
class Pipeline(_Script):
    """An ordered list of cards; build one in code with `add`, or load one with `load_pipeline`."""

    name: str = "pipeline"
    cards: list[Card] = field(default_factory=list)
    description: str = ""
    version: int = FORMAT_VERSION

    def card(self, card_id: str) -> Card:
        for card in self.cards:
            if card.id == card_id:
                return card
        raise KeyError(f"pipeline '{self.name}' has no card '{card_id}'")

    def index(self, card_id: str) -> int:
        return next(i for i, card in enumerate(self.cards) if card.id == card_id)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.version, "name": self.name}
        if self.description:
            data["description"] = self.description
        data["cards"] = [card.to_dict() for card in self.cards]
        return data

    def save(self, path: str | Path) -> Path:
        """Write the version-1 file; `.json` writes JSON, anything else YAML."""
        from cardloop.pipeline.fileformat import save_pipeline

        return save_pipeline(self, path)
