"""What a card asks an executor for (docs/ray.md, Resources): its type's `resources` (cards/spec.py), overridden
per card or per block in the pipeline (`resources: {cpu: 2, gpu: 1, memory: 4e9, fake_gpu: 1}` beside `config`).

Resources are placement, not computation: they enter no cache key, and the local and process executors ignore
them. A block's `resources` apply to every card in its body (nested blocks too) unless that card names the same
resource itself; each resource name takes the innermost amount given for it. Torch-free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from cardloop.cards.spec import CardType
from cardloop.errors import Problem
from cardloop.pipeline.blocks import BlockType
from cardloop.pipeline.model import Card

#: the resources every executor knows by name; any other name is a custom resource (Ray's `resources={...}`)
NAMED = ("cpu", "gpu", "memory")
#: a custom resource's name
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


def amount(value: Any) -> float | None:
    """A resource amount as a number (YAML reads `4e9` as text), or None when it is none."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def resource_problems(card: Card) -> list[Problem]:
    """The problems of a card's `resources`, each naming the card and the resource."""
    if card.resources is None:
        return []
    problems = []
    for name, value in card.resources.items():
        field, where = f"resources.{name}", f"card '{card.id}'"
        number = amount(value)
        if not isinstance(name, str) or not NAME.match(name):
            message = (f"resources: {name!r} is not a resource name; use cpu, gpu, memory or a custom resource's "
                       "name (letters, digits, '_', '-', '.', ':')")
        elif name.lower() in NAMED and name not in NAMED:
            message = f"resources: write '{name.lower()}', not '{name}'"
        elif number is None or number < 0:
            message = f"resources: '{name}' is {value!r}; it takes a non-negative number (such as 2, 0.5 or 4e9)"
        elif name == "memory" and not number.is_integer():
            message = f"resources: 'memory' is {value!r}; it takes a whole number of bytes (such as 4e9)"
        elif name != "memory" and number > 1 and not number.is_integer():
            message = (f"resources: '{name}' is {value!r}; an amount above 1 is a whole number (a fraction "
                       "shares one unit: 0.5)")
        else:
            continue
        problems.append(Problem(f"{where}: {message}", card=card.id, field=field))
    return problems


class CardResources(NamedTuple):
    """One card's resources: `amounts` by name, and the names the pipeline gave (`asked`: required of an executor
    that places cards, where the type's own `gpu` is only a wish)."""

    path: str  # the card's static path (`epochs.batches.fwd`)
    card_type: CardType
    config: Any
    amounts: dict[str, float]
    asked: frozenset[str]


def resources_within(cards: Iterable[tuple[Card, CardType, Any]], inherited: Mapping[str, float] | None = None,
                     scope: str = "") -> Iterator[CardResources]:
    """The resources of these (card, type, config) and of the cards in their blocks' bodies, nested ones too:
    each type's declared amounts, overridden by the enclosing blocks' `resources` and then the card's own."""
    for card, card_type, config in cards:
        given = {**(inherited or {}), **{name: amount(value) for name, value in (card.resources or {}).items()}}
        yield CardResources(scope + card.id, card_type, config, {**card_type.resources, **given}, frozenset(given))
        spec = card_type.spec if isinstance(card_type, BlockType) else None
        if spec is not None:
            body = [(body_card, found.card_type, found.config)
                    for body_card, found in zip(spec.body.cards[1:], spec.checked[1:])]
            yield from resources_within(body, given, f"{scope}{card.id}.")
