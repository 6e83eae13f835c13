"""Paths of cards inside loop blocks (docs/blocks.md, Identity): `epochs[3].batches[7].fwd` names one execution of
a body card, its static path `epochs.batches.fwd` the card in every iteration. What the CLI, the API and export
read a user's path with. Torch-free."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cardloop.errors import PathInvalid

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)(?:\[([0-9]+)\])?$")


@dataclass(frozen=True)
class CardPath:
    """A card's place: `static` (`epochs.batches.fwd`, or a top-level card's id) and, for one execution of a body
    card, the 0-based iteration of each enclosing loop, outermost first (`indices` (3, 7)); () for a static path."""

    static: str
    indices: tuple[int, ...] = ()

    @property
    def parts(self) -> list[str]:
        """The block ids from the outermost in, then the card's id."""
        return self.static.split(".")

    @property
    def loops(self) -> list[str]:
        """The static path of each enclosing loop, outermost first (`epochs`, `epochs.batches`)."""
        parts = self.parts
        return [".".join(parts[:depth]) for depth in range(1, len(parts))]

    @property
    def is_iteration(self) -> bool:
        """Whether this names one execution (`epochs[3].fwd`) rather than a card in every iteration."""
        return bool(self.indices)

    def __str__(self) -> str:
        return format_path(self.static, self.indices)


def parse_path(text: str) -> CardPath:
    """`epochs[3].batches[7].fwd` -> CardPath("epochs.batches.fwd", (3, 7)); `epochs.batches.fwd` and `fwd` are
    static paths. Every block on the way has its iteration, or none has; the card at the end has none. PathInvalid
    (one sentence saying what a path looks like) for any other text."""
    if not isinstance(text, str) or not text:
        raise PathInvalid(f"{text!r} is no card path; {_FORM}")
    names, indices = [], []
    for part in text.split("."):
        match = _PART.match(part)
        if match is None:
            raise PathInvalid(f"card path '{text}' has a part '{part}' that is neither a card id nor "
                              f"'<block id>[<iteration>]'; {_FORM}")
        names.append(match.group(1))
        indices.append(match.group(2))
    if indices[-1] is not None:
        raise PathInvalid(f"card path '{text}' ends with an iteration ('{text.rsplit('.', 1)[-1]}'), not a card; "
                          f"name a card of that block's body after it, e.g. '{text}.<card id>'")
    given = [index is not None for index in indices[:-1]]
    if any(given) and not all(given):
        missing = ", ".join(f"'{name}'" for name, index in zip(names, indices[:-1]) if index is None)
        raise PathInvalid(f"card path '{text}' gives no iteration for block(s) {missing}: give one for every "
                          f"block on the way ('epochs[3].batches[7].fwd') or for none ('epochs.batches.fwd')")
    return CardPath(".".join(names), tuple(int(index) for index in indices[:-1]) if all(given) and given else ())


def format_path(static: str, indices: tuple[int, ...] | list[int] = ()) -> str:
    """The path of one execution (`epochs[3].batches[7].fwd`) from a static path and its loops' iterations;
    the static path itself when `indices` is empty."""
    if not indices:
        return static
    parts = static.split(".")
    if len(indices) != len(parts) - 1:
        raise ValueError(f"'{static}' lies inside {len(parts) - 1} loop(s), not {len(indices)}")
    return ".".join(f"{name}[{index}]" for name, index in zip(parts, indices)) + "." + parts[-1]


_FORM = ("a card path is a card id ('fwd'), a static path of a body card ('epochs.batches.fwd') or one iteration's "
         "('epochs[3].batches[7].fwd', iterations counted from 0)")
