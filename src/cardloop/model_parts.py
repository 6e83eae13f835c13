"""Parts of a model: its parameters chosen by name pattern, and which optimizer card trains which of them.

Patterns are `fnmatch` patterns on `model.named_parameters()` names (`"0.*"`, `"head.*"`, `"*.bias"`). An
optimizer made by a card is recorded against its model under the card's id (`record_trainer`), so that a second
optimizer of the same model that would train a parameter the first one trains is refused, naming both cards
(`check_unclaimed`). The optimizer codec keeps the card's id and records a decoded optimizer again against the
model it is decoded into: the check holds when the first optimizer came from the store (a cached card, a card
run in another process), since a model is always loaded together with its group's optimizers.
"""

from __future__ import annotations

import fnmatch
import weakref
from typing import Any

from cardloop.errors import CardError

#: the id of the card that made an optimizer, kept on the optimizer (and by the optimizer codec)
TRAINER_CARD_ATTR = "_cardloop_card"
NAMES_SHOWN = 20

# model -> {card id: weak reference to the optimizer that card made for it}; a model copied or dropped takes
# nothing along
_trainers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def select_parameters(names: list[str], patterns: list[str], field: str, among: str = "the model's") -> list[str]:
    """The names that match any of `patterns`, in the model's order. A pattern that matches none of them is the
    user's mistake: CardError naming the config field and listing the names there are (`among`: whose)."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise CardError(f"config field '{field}': the pattern '{pattern}' matches no parameter; {among} "
                            f"parameters are {describe_names(names)}")
    return [name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]


def describe_names(names: list[str]) -> str:
    """The names quoted, comma-separated, at most NAMES_SHOWN of them."""
    shown = ", ".join(f"'{name}'" for name in names[:NAMES_SHOWN])
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return (shown + more) or "none"


def record_trainer(model: Any, optimizer: Any, card_id: str) -> None:
    """Remember that card `card_id` made `optimizer` for `model` (replacing what the same card made before)."""
    setattr(optimizer, TRAINER_CARD_ATTR, card_id)
    _trainers.setdefault(model, {})[card_id] = weakref.ref(optimizer)


def check_unclaimed(model: Any, parameters: dict[str, Any], card_id: str) -> None:
    """CardError if an optimizer another card made for `model` trains one of `parameters` (name -> parameter):
    a parameter is trained by one optimizer."""
    wanted = {id(parameter): name for name, parameter in parameters.items()}
    for other_card, reference in _trainers.get(model, {}).items():
        other = reference()
        if other is None or other_card == card_id:
            continue
        taken = [wanted[id(p)] for group in other.param_groups for p in group["params"] if id(p) in wanted]
        if taken:
            raise CardError(f"the optimizer card '{other_card}' already trains {describe_names(taken)} of this "
                            f"model, so '{card_id}' cannot train them too: a parameter is trained by one "
                            "optimizer; choose config field 'parameters' of the two cards so that they do not "
                            "overlap")
