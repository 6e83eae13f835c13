"""`loss_combine`: a weighted sum of losses, back-propagated once (the guide's "Combine multiple loss functions").

loss = weights[0] * loss_1 + weights[1] * loss_2 + ..., added left to right, as a hand-written loop writes it; the
result keeps the autograd graph of every loss in it, so one Backward Pass computes the gradients of all of them.
More than LOSS_INPUTS losses: feed one card's `loss` into the next card's `loss_1` (weight 1.0, which is exact).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import LOSS, SCALAR

LOSS_INPUTS = 4
REQUIRED_INPUTS = 2
INPUT_NAMES = tuple(f"loss_{i}" for i in range(1, LOSS_INPUTS + 1))

Weight = Annotated[float, Field(allow_inf_nan=False)]


class LossCombineConfig(CardConfig):
    weights: list[Weight] | None = Field(
        default=None, min_length=REQUIRED_INPUTS, max_length=LOSS_INPUTS,
        description="One weight per connected loss input, in order (loss_1 first); empty: 1.0 each.")


@card(
    "loss_combine",
    title="Combine Losses",
    category="training",
    description="A weighted sum of 2 to 4 losses (weights[0] * loss_1 + weights[1] * loss_2 + ...), one loss to "
                "back-propagate once; for more, chain cards: one card's loss into the next card's loss_1.",
    inputs=[Port(name, LOSS, f"Loss {name[5:]}.", required=i < REQUIRED_INPUTS) for i, name in enumerate(INPUT_NAMES)],
    outputs=[Port("loss", LOSS, "The weighted sum (with the gradients of every loss in it)."),
             Port("loss_value", SCALAR, "The weighted sum's value.", metric=True)],
    config=LossCombineConfig,
)
def loss_combine(config: LossCombineConfig, loss_1, loss_2, loss_3, loss_4) -> dict:
    losses = connected_losses((loss_1, loss_2, loss_3, loss_4))
    weights = config.weights or [1.0] * len(losses)
    if len(weights) != len(losses):
        raise CardError(f"config field 'weights' has {len(weights)} weights, but {len(losses)} losses are connected "
                        f"({', '.join(INPUT_NAMES[:len(losses)])}); give one weight per connected loss, in order, or "
                        "leave it empty for 1.0 each")
    total = weights[0] * losses[0]
    for weight, loss in zip(weights[1:], losses[1:]):
        total = total + weight * loss
    return {"loss": total, "loss_value": total.item()}


def connected_losses(values: tuple[Any, ...]) -> list[Any]:
    """The losses of the connected inputs, which must come first (loss_1, loss_2, ... without a gap), each a
    tensor holding one number."""
    import torch

    count = sum(value is not None for value in values)
    if any(value is None for value in values[:count]):
        gap = next(i for i, value in enumerate(values) if value is None)
        later = next(i for i in range(gap, len(values)) if values[i] is not None)
        raise CardError(f"input '{INPUT_NAMES[later]}' is connected but '{INPUT_NAMES[gap]}' is not; connect the "
                        "losses in order, from loss_1 on")
    for name, value in zip(INPUT_NAMES, values[:count]):
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else \
                f"a {type(value).__name__}"
            raise CardError(f"input '{name}' holds {shape}, not a loss (a tensor of one number)")
    return list(values[:count])
