"""Learning-rate schedulers that can be rebuilt from a JSON recipe, so a stored scheduler needs no pickle.

A recipe names a class of `torch.optim.lr_scheduler` and its constructor's keyword arguments (JSON values: no
lambdas, which is why LambdaLR and MultiplicativeLR cannot be stored); SequentialLR and ChainedScheduler also
hold the recipes of the schedulers they chain:

    {"type": "SequentialLR", "kwargs": {"milestones": [5]},
     "schedulers": [{"type": "LinearLR", "kwargs": {"start_factor": 0.1, "total_iters": 5}},
                    {"type": "CosineAnnealingLR", "kwargs": {"T_max": 95}}]}

`build_scheduler` builds one over an optimizer and tags it with its recipe; the scheduler codec stores that
recipe beside the scheduler's `state_dict` and builds it again on load.
"""

from __future__ import annotations

import copy
from typing import Any

RECIPE_ATTR = "_cardloop_scheduler_recipe"
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
    `initial_lr`, and the learning rate of step 0), tagged with the recipe. ValueError or TypeError for a recipe
    torch refuses."""
    cls = scheduler_class(recipe["type"])
    kwargs = copy.deepcopy(recipe.get("kwargs", {}))
    if recipe["type"] in CHAINING_SCHEDULERS:
        chained = [build_scheduler(optimizer, inner) for inner in recipe.get("schedulers", ())]
        scheduler = cls(optimizer=optimizer, schedulers=chained, **kwargs)
    else:
        scheduler = cls(optimizer, **kwargs)
    setattr(scheduler, RECIPE_ATTR, copy.deepcopy(recipe))
    return scheduler


def recipe_of(scheduler: Any) -> dict[str, Any] | None:
    """The recipe a scheduler was built from (None for one `build_scheduler` did not build)."""
    return getattr(scheduler, RECIPE_ATTR, None)


def last_lr(scheduler: Any) -> float:
    """The learning rate of the scheduler's first parameter group after its last step (`get_last_lr()[0]`)."""
    return float(scheduler.get_last_lr()[0])
