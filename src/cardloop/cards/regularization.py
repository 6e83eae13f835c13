"""`regularization`: an L1 or L2 penalty on a model's parameters added to a loss, the guide's "Add L1
Regularization" built in.

loss + weight * sum(|p|.sum()) (l1) or loss + weight * sum((p ** 2).sum()) (l2: the sum of squares, not its square
root) over the selected parameters in the model's order: the expression a hand-written loop writes, with the same
bits. An optimizer's weight_decay = λ (not AdamW's) adds what l2 with weight λ / 2 adds to the gradient.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import Field

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import LOSS, MODEL, SCALAR


class RegularizationConfig(CardConfig):
    norm: Literal["l1", "l2"] = Field(default="l1", description="l1: sum of |p|; l2: sum of p ** 2 (no square root).")
    weight: float = Field(default=1e-4, ge=0, allow_inf_nan=False, description="λ, the penalty's multiplier.")
    parameters: list[str] | None = Field(
        default=None, min_length=1,
        description="Name patterns (fnmatch, as '0.*' or '*.weight') of the parameters to penalise, among "
                    "model.named_parameters(); empty: every parameter.")


@card(
    "regularization",
    title="Add Regularization",
    category="training",
    description="loss + weight * the L1 norm (sum of |p|) or the sum of squares (L2) of the model's parameters, "
                "all or those whose names match the patterns; the result keeps its autograd graph.",
    inputs=[Port("loss", LOSS, "Loss tensor."), Port("model", MODEL, "Model whose parameters are penalised.")],
    outputs=[Port("loss", LOSS, "The regularized loss (with gradients)."),
             Port("loss_value", SCALAR, "The regularized loss's value.", metric=True)],
    config=RegularizationConfig,
)
def regularization(config: RegularizationConfig, loss, model) -> dict:
    parameters = selected_parameters(model, config.parameters)
    if config.norm == "l1":
        penalty = sum(parameter.abs().sum() for parameter in parameters)
    else:
        penalty = sum((parameter ** 2).sum() for parameter in parameters)
    total = loss + config.weight * penalty
    return {"loss": total, "loss_value": total.item()}


def selected_parameters(model: Any, patterns: list[str] | None) -> list[Any]:
    """The model's parameters whose names match one of the patterns (all without patterns), in the model's
    order; a pattern that matches none is the user's mistake, named with the names there are."""
    named = list(model.named_parameters())
    if patterns is None:
        return [parameter for _, parameter in named]
    names = [name for name, _ in named]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise CardError(f"config field 'parameters': pattern {pattern!r} matches no parameter of the model; "
                            f"its parameters are {', '.join(names)}")
    return [parameter for name, parameter in named if any(fnmatch.fnmatchcase(name, p) for p in patterns)]
