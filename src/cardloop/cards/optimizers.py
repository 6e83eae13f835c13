"""Initialize Optimizer's config and how it builds the torch optimizer: the type's own hyperparameters (torch's
names and defaults), the parameters it trains (name patterns) and parameter groups with their own settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from cardloop.cards.spec import CardConfig
from cardloop.errors import CardError
from cardloop.model_parts import check_unclaimed, record_trainer, select_parameters

Beta = Annotated[float, Field(ge=0, lt=1)]


class InitOptimizerConfig(CardConfig):
    optimizer_type: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"
    learning_rate: float = Field(default=0.001, gt=0, description="Learning rate.")
    weight_decay: float = Field(default=0.0, ge=0, description="L2 regularization, as PyTorch's weight_decay (adamw: "
                                                               "decoupled; torch's AdamW defaults to 0.01, this card "
                                                               "to 0.0).")
    momentum: float = Field(default=0.0, ge=0, description="sgd, rmsprop: momentum factor.")
    dampening: float = Field(default=0.0, ge=0, le=1, description="sgd: dampening of the momentum.")
    nesterov: bool = Field(default=False, description="sgd: Nesterov momentum (needs momentum > 0, dampening 0).")
    betas: list[Beta] = Field(default=[0.9, 0.999], min_length=2, max_length=2,
                              description="adam, adamw: the running averages' coefficients (two).")
    eps: float = Field(default=1e-8, ge=0, description="adam, adamw, rmsprop: added to the denominator.")
    amsgrad: bool = Field(default=False, description="adam, adamw: the AMSGrad variant.")
    alpha: float = Field(default=0.99, ge=0, description="rmsprop: smoothing constant.")
    centered: bool = Field(default=False, description="rmsprop: normalize by the gradient's estimated variance.")
    parameters: list[str] = Field(default=["*"], min_length=1,
                                  description="Name patterns (fnmatch, e.g. '0.*', 'head.*', '*.bias') of the "
                                              "model's parameters this optimizer trains; default all.")
    param_groups: list[ParamGroupConfig] = Field(
        default=[], description="Parameter groups with their own settings: each a list of `parameters` patterns "
                                "(among those trained) and any of the settings above but optimizer_type.")


#: the settings a parameter group may give, and a type's own settings besides learning_rate and weight_decay
SETTINGS = tuple(name for name in InitOptimizerConfig.model_fields
                 if name not in ("optimizer_type", "parameters", "param_groups"))
OWN_SETTINGS = {
    "adam": ("betas", "eps", "amsgrad"),
    "adamw": ("betas", "eps", "amsgrad"),
    "sgd": ("momentum", "dampening", "nesterov"),
    "rmsprop": ("alpha", "eps", "momentum", "centered"),
}
COMMON_SETTINGS = ("learning_rate", "weight_decay")
DEFAULTS = {name: InitOptimizerConfig.model_fields[name].default for name in SETTINGS}
TORCH_CLASSES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}


def _optional(name: str) -> tuple[Any, Any]:
    """A group's version of setting `name`: the same type and bounds, None (the card's value) by default."""
    info = InitOptimizerConfig.model_fields[name]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return annotation | None, Field(default=None, description=info.description)


ParamGroupConfig = create_model(
    "ParamGroupConfig", __base__=CardConfig, __doc__="A parameter group: its parameters and its own settings.",
    parameters=(list[str], Field(min_length=1, description="Name patterns of the group's parameters.")),
    **{name: _optional(name) for name in SETTINGS})
InitOptimizerConfig.model_rebuild()


def make_optimizer(config: InitOptimizerConfig, model: Any, card_id: str) -> Any:
    """The torch optimizer the config describes, over the model's parameters it selects (the rest of them first,
    with the card's settings, then each of `param_groups`), recorded as card `card_id`'s: a parameter that
    another card's optimizer of this model trains is refused."""
    import torch

    kind = config.optimizer_type
    own = config.model_dump(include=set(SETTINGS))
    _check_settings(kind, {name: value for name, value in own.items() if value != DEFAULTS[name]}, own, "")
    parameters = dict(model.named_parameters())
    trained = select_parameters(list(parameters), config.parameters, "parameters")
    check_unclaimed(model, {name: parameters[name] for name in trained}, card_id)
    groups, owner = [], {}
    for index, group in enumerate(config.param_groups):
        field = f"param_groups.{index}."
        settings = group.model_dump(include=set(SETTINGS), exclude_none=True)
        _check_settings(kind, settings, {**own, **settings}, field)
        for name in (names := select_parameters(trained, group.parameters, field + "parameters", "the trained")):
            if name in owner:
                raise CardError(f"config field '{field}parameters': parameter '{name}' is already in param_groups."
                                f"{owner[name]}; a parameter belongs to one group")
            owner[name] = index
        groups.append({"params": [parameters[name] for name in names], **_torch_settings(kind, settings)})
    rest = [parameters[name] for name in trained if name not in owner]
    if rest:
        groups.insert(0, {"params": rest})
    optimizer = getattr(torch.optim, TORCH_CLASSES[kind])(groups, **_torch_settings(kind, own))
    record_trainer(model, optimizer, card_id)
    return optimizer


def _check_settings(kind: str, given: dict[str, Any], effective: dict[str, Any], field: str) -> None:
    """A setting `given` that the type does not take, and Nesterov momentum without momentum or with dampening
    (which torch's SGD refuses), are the user's mistakes, named."""
    for name, value in given.items():
        if name not in COMMON_SETTINGS and name not in OWN_SETTINGS[kind]:
            raise CardError(f"config field '{field}{name}' is {value!r}, but optimizer_type '{kind}' takes no "
                            f"{name}; its own fields are {', '.join(OWN_SETTINGS[kind])}")
    if kind == "sgd" and effective["nesterov"] and (effective["momentum"] <= 0 or effective["dampening"] != 0):
        raise CardError(f"config field '{field}nesterov' is true, which needs momentum > 0 and dampening 0 (as "
                        f"torch's SGD does), but momentum is {effective['momentum']} and dampening "
                        f"{effective['dampening']}")


def _torch_settings(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings the type takes, under torch's names."""
    return {("lr" if name == "learning_rate" else name): tuple(value) if name == "betas" else value
            for name, value in settings.items() if name in COMMON_SETTINGS or name in OWN_SETTINGS[kind]}
