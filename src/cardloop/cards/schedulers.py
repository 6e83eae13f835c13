"""Learning-rate scheduler cards: `training_lr_scheduler` makes a scheduler over an optimizer (a new member of its
training-state group), `training_scheduler_step` steps it. Each scheduler type is torch.optim.lr_scheduler's own,
configured with torch's parameter names; a field left empty takes torch's default (docs/schedulers.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from cardloop.cards.bounds import MAX_INT64
from cardloop.cards.spec import CardConfig, NoConfig, Port, card, config_rule
from cardloop.errors import CardError
from cardloop.kinds import OPTIMIZER, SCALAR, SCHEDULER

#: Per scheduler_type: torch's class, the config fields it requires, and those it also takes. `warmup_cosine` is
#: SequentialLR(LinearLR(start_factor, total_iters=warmup_steps), CosineAnnealingLR(T_max, eta_min),
#: milestones=[warmup_steps]); `one_cycle` needs total_steps, or epochs and steps_per_epoch.
SCHEDULER_TYPES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "step": ("StepLR", ("step_size",), ("gamma",)),
    "multistep": ("MultiStepLR", ("milestones",), ("gamma",)),
    "exponential": ("ExponentialLR", ("gamma",), ()),
    "cosine": ("CosineAnnealingLR", ("T_max",), ("eta_min",)),
    "linear_warmup": ("LinearLR", (), ("start_factor", "end_factor", "total_iters")),
    "warmup_cosine": ("SequentialLR", ("warmup_steps", "T_max"), ("start_factor", "eta_min")),
    "one_cycle": ("OneCycleLR", ("max_lr",), ("total_steps", "epochs", "steps_per_epoch", "pct_start",
                                              "anneal_strategy", "cycle_momentum", "base_momentum", "max_momentum",
                                              "div_factor", "final_div_factor", "three_phase")),
    "reduce_on_plateau": ("ReduceLROnPlateau", (), ("mode", "factor", "patience", "threshold", "threshold_mode",
                                                    "cooldown", "min_lr", "eps")),
}
PLATEAU = "ReduceLROnPlateau"


def _count(description: str) -> Any:
    return Field(default=None, ge=1, le=MAX_INT64, description=description)


class LRSchedulerConfig(CardConfig):
    model_config = ConfigDict(validate_default=True)  # so that the rule below sees the fields left empty

    scheduler_type: Literal["step", "multistep", "exponential", "cosine", "linear_warmup", "warmup_cosine",
                            "one_cycle", "reduce_on_plateau"] = Field(
        description="torch's StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, warmup then cosine "
                    "(SequentialLR of LinearLR and CosineAnnealingLR), OneCycleLR or ReduceLROnPlateau.")
    step_size: int | None = _count("step: steps between decays.")
    gamma: float | None = Field(default=None, gt=0, description="step, multistep, exponential: decay factor.")
    milestones: list[int] | None = Field(default=None, min_length=1, description="multistep: steps to decay at.")
    T_max: int | None = _count("cosine, warmup_cosine: steps of the cosine (after the warmup).")
    eta_min: float | None = Field(default=None, ge=0, description="cosine, warmup_cosine: the lowest learning rate.")
    start_factor: float | None = Field(default=None, gt=0, le=1,
                                       description="linear_warmup, warmup_cosine: the first step's factor.")
    end_factor: float | None = Field(default=None, ge=0, le=1, description="linear_warmup: the last factor.")
    total_iters: int | None = _count("linear_warmup: steps from start_factor to end_factor.")
    warmup_steps: int | None = _count("warmup_cosine: steps of the linear warmup, then the cosine's first step.")
    max_lr: float | None = Field(default=None, gt=0, description="one_cycle: the peak learning rate.")
    epochs: int | None = _count("one_cycle: epochs in the cycle, with steps_per_epoch.")
    steps_per_epoch: int | None = _count("one_cycle: steps per epoch, with epochs.")
    total_steps: int | None = _count("one_cycle: steps in the cycle (or epochs and steps_per_epoch).")
    pct_start: float | None = Field(default=None, ge=0, le=1, description="one_cycle: share of rising steps.")
    anneal_strategy: Literal["cos", "linear"] | None = Field(default=None, description="one_cycle: annealing.")
    cycle_momentum: bool | None = Field(default=None, description="one_cycle: cycle momentum inversely.")
    base_momentum: float | None = Field(default=None, ge=0, description="one_cycle: the lowest momentum.")
    max_momentum: float | None = Field(default=None, ge=0, description="one_cycle: the highest momentum.")
    div_factor: float | None = Field(default=None, gt=0, description="one_cycle: initial lr = max_lr / div_factor.")
    final_div_factor: float | None = Field(default=None, gt=0,
                                           description="one_cycle: last lr = initial lr / final_div_factor.")
    three_phase: bool | None = Field(default=None, description="one_cycle: a third phase down to the last lr.")
    mode: Literal["min", "max"] | None = Field(default=None, description="reduce_on_plateau: lower or higher is "
                                                                          "better.")
    factor: float | None = Field(default=None, gt=0, lt=1, description="reduce_on_plateau: the reduction factor.")
    patience: int | None = Field(default=None, ge=0, le=MAX_INT64,
                                 description="reduce_on_plateau: steps without improvement before reducing.")
    threshold: float | None = Field(default=None, ge=0, description="reduce_on_plateau: what counts as better.")
    threshold_mode: Literal["rel", "abs"] | None = Field(default=None,
                                                         description="reduce_on_plateau: threshold relative or not.")
    cooldown: int | None = Field(default=None, ge=0, le=MAX_INT64,
                                 description="reduce_on_plateau: steps to wait after a reduction.")
    min_lr: float | None = Field(default=None, ge=0, description="reduce_on_plateau: the lowest learning rate.")
    eps: float | None = Field(default=None, ge=0, description="reduce_on_plateau: smaller changes are ignored.")

    @field_validator("*")
    @classmethod
    def _fits_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        """A field the scheduler type requires is given, and a field it does not take is left empty."""
        kind = info.data.get("scheduler_type")
        if info.field_name == "scheduler_type" or kind is None:
            return value
        torch_name, required, optional = SCHEDULER_TYPES[kind]
        named = f"scheduler_type '{kind}'"
        takes = f"(torch's {torch_name}, which takes {', '.join(required + optional) or 'no field'})"
        if value is None and info.field_name in required:
            raise config_rule(f"is required for {named} {takes}")
        if value is not None and info.field_name not in required + optional:
            raise config_rule(f"does not apply to {named} {takes}")
        if (kind, info.field_name, value) == ("one_cycle", "total_steps", None) and \
                None in (info.data.get("epochs"), info.data.get("steps_per_epoch")):  # declared before it
            raise config_rule(f"is required for {named} unless epochs and steps_per_epoch are given {takes}")
        return value


def scheduler_recipe(config: LRSchedulerConfig) -> dict[str, Any]:
    """The recipe (`cardloop.schedulers`) of the scheduler `config` describes: only the fields given, so that
    torch's defaults apply to the others."""
    torch_name, required, optional = SCHEDULER_TYPES[config.scheduler_type]
    given = {name: getattr(config, name) for name in required + optional if getattr(config, name) is not None}
    if config.scheduler_type != "warmup_cosine":
        return {"type": torch_name, "kwargs": given}
    warmup = {"total_iters": given["warmup_steps"], **{k: v for k, v in given.items() if k == "start_factor"}}
    cosine = {"T_max": given["T_max"], **{k: v for k, v in given.items() if k == "eta_min"}}
    return {"type": "SequentialLR", "kwargs": {"milestones": [given["warmup_steps"]]},
            "schedulers": [{"type": "LinearLR", "kwargs": warmup}, {"type": "CosineAnnealingLR", "kwargs": cosine}]}


@card(
    "training_lr_scheduler",
    title="Learning Rate Scheduler",
    category="training",
    description="A torch.optim.lr_scheduler scheduler over the optimizer, with torch's parameter names; building "
                "it sets the optimizer's learning rate for the first step, as torch does.",
    inputs=[Port("optimizer", OPTIMIZER, "Optimizer whose learning rate to schedule.")],
    outputs=[Port("scheduler", SCHEDULER, "Scheduler (training state bound to the optimizer).")],
    config=LRSchedulerConfig,
    mutates_state=True,
)
def lr_scheduler(config: LRSchedulerConfig, optimizer) -> dict:
    from cardloop.schedulers import build_scheduler

    try:
        return {"scheduler": build_scheduler(optimizer, scheduler_recipe(config))}
    except ValueError as error:  # a rule between fields that torch checks (OneCycleLR's momentum needs momentum)
        raise CardError(f"torch refuses scheduler_type '{config.scheduler_type}' with this config: {error}") from None


def check_scheduler_bound(scheduler, optimizer) -> None:
    """The scheduler must act on this optimizer (the one it was made from)."""
    if scheduler.optimizer is not optimizer:
        raise CardError("the scheduler does not act on this optimizer; connect the optimizer the scheduler was made "
                        "from (the training_lr_scheduler card's input), or one that continues it")


def step_scheduler(scheduler, metric: float | None, port: str = "metric") -> float:
    """Step the scheduler (ReduceLROnPlateau on `metric`, which only it takes); the learning rate after it."""
    from cardloop.schedulers import last_lr

    plateau = type(scheduler).__name__ == PLATEAU
    if plateau and metric is None:
        raise CardError(f"input '{port}' is not connected: scheduler_type reduce_on_plateau steps on a metric; "
                        "connect a scalar such as a loss or evaluate's mse")
    if not plateau and metric is not None:
        raise CardError(f"input '{port}' is only for scheduler_type reduce_on_plateau; a {type(scheduler).__name__} "
                        "steps without one: leave it unconnected")
    if plateau:
        scheduler.step(float(metric))
    else:
        scheduler.step()
    return last_lr(scheduler)


@card(
    "training_scheduler_step",
    title="Scheduler Step",
    category="training",
    description="Step the learning-rate scheduler (after Optimizer Step, as in PyTorch); ReduceLROnPlateau steps "
                "on `metric`. `lr` is the first parameter group's learning rate after the step.",
    inputs=[Port("scheduler", SCHEDULER, "Scheduler (from Learning Rate Scheduler)."),
            Port("optimizer", OPTIMIZER, "The optimizer the scheduler acts on."),
            Port("metric", SCALAR, "For reduce_on_plateau only: the value it watches (e.g. a loss).",
                 required=False)],
    outputs=[Port("scheduler", SCHEDULER, "Scheduler after the step.", state_of="scheduler"),
             Port("optimizer", OPTIMIZER, "Optimizer with its new learning rate.", state_of="optimizer"),
             Port("lr", SCALAR, "Learning rate after the step (first parameter group).", metric=True)],
    config=NoConfig,
    mutates_state=True,
)
def scheduler_step(config: NoConfig, scheduler, optimizer, metric) -> dict:
    check_scheduler_bound(scheduler, optimizer)
    return {"scheduler": scheduler, "optimizer": optimizer, "lr": step_scheduler(scheduler, metric)}
