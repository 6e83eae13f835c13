"""A user-defined card: add an L1 penalty on the model's weights to the loss (the guide's
"Custom loss with regularization"). Load it with `--cards examples/cards/l1_regularization.py`."""

from pydantic import Field

from cardloop import CardConfig, Port, card


class L1Config(CardConfig):
    weight: float = Field(default=1e-4, ge=0, description="Multiplier of the sum of absolute parameter values.")


@card(
    "l1_regularization",
    title="Add L1 Regularization",
    category="loss",
    description="loss + weight * sum(|p|) over the model's parameters; the result keeps its autograd graph.",
    inputs=[Port("loss", "loss", "Loss tensor."), Port("model", "model", "Model whose weights are penalised.")],
    outputs=[Port("loss", "loss", "Regularized loss.")],
    config=L1Config,
)
def l1_regularization(config: L1Config, loss, model):
    penalty = sum(parameter.abs().sum() for parameter in model.parameters())
    return {"loss": loss + config.weight * penalty}
