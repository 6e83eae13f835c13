"""Learning-rate schedulers that can be rebuilt from a JSON recipe, so a stored scheduler needs no pickle.

A recipe names a class of `torch.optim.lr_scheduler` and its constructor's keyword arguments (JSON values: no
lambdas, which is why LambdaLR and MultiplicativeLR cannot be stored); SequentialLR and ChainedScheduler also
hold the recipes of the schedulers they chain:

    {"type": "SequentialLR", "kwargs": {"milestones": [5]},
     "schedulers": [{"type": "LinearLR", "kwargs": {"start_factor": 0.1, "total_iters": 5}},
                    {"type": "CosineAnnealingLR", "kwargs": {"T_max": 95}}]}

`build_scheduler` builds one over an optimizer and remembers its recipe (beside it, not in it, so that its
`state_dict` stays torch's); the scheduler codec stores that recipe beside the `state_dict` and builds it again
on load.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

_recipes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # scheduler -> the recipe it was built from
#: torch's schedulers that take a callable, which no recipe can hold
CALLABLE_SCHEDULERS = ("LambdaLR", "MultiplicativeLR")
CHAINING_SCHEDULERS = ("SequentialLR", "ChainedScheduler")


def scheduler_class(name: str) -> type:
    """The class of torch.optim.lr_scheduler called `name`; ValueError if it is not one a recipe can build."""
    from torch.optim import lr_scheduler

    cls = getattr(lr_scheduler, name, None)
    if not (isinstance(cls, type) and issubclass(cls, lr_scheduler.LRScheduler)) or name in CALLABLE_SCHEDULERS:
        raise ValueError(f"scheduler type '{name}' is not one of torch.optim.lr_scheduler's schedulers that a recipe "
                         f"can build (those that take no function: not {', '.join(CALLABLE_SCHEDULERS)})")
    return cls


def build_scheduler(optimizer: Any, recipe: dict[str, Any]) -> Any:
    """The scheduler `recipe` describes, over `optimizer` (which it changes as torch's constructors do: its
    `initial_lr`, and the learning rate of step 0); its recipe is remembered. ValueError or TypeError for a recipe
    torch refuses."""
    scheduler = _build(optimizer, recipe)
    _recipes[scheduler] = copy.deepcopy(recipe)
    return scheduler


def _build(optimizer: Any, recipe: dict[str, Any]) -> Any:
    cls = scheduler_class(recipe["type"])
    kwargs = copy.deepcopy(recipe.get("kwargs", {}))
    if recipe["type"] in CHAINING_SCHEDULERS:
        chained = [_build(optimizer, inner) for inner in recipe.get("schedulers", ())]
        return cls(optimizer=optimizer, schedulers=chained, **kwargs)
    return cls(optimizer, **kwargs)


def recipe_of(scheduler: Any) -> dict[str, Any] | None:
    """The recipe a scheduler was built from (None for one `build_scheduler` did not build)."""
    return _recipes.get(scheduler)


def last_lr(scheduler: Any) -> float:
    """The learning rate of the scheduler's first parameter group after its last step (`get_last_lr()[0]`)."""
    return float(scheduler.get_last_lr()[0])
