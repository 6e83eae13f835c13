"""`training_freeze`: stop training parts of a model, or train them again, chosen by parameter name pattern."""

from __future__ import annotations

from pydantic import Field

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.kinds import MODEL
from cardloop.model_parts import select_parameters


class FreezeConfig(CardConfig):
    parameters: list[str] = Field(min_length=1, description="Name patterns (fnmatch, e.g. '0.*', '*.bias') of the "
                                                            "parameters to freeze or unfreeze.")
    freeze: bool = Field(default=True, description="true: freeze them (no gradient, so no update); false: train "
                                                   "them again.")


@card(
    "training_freeze",
    title="Freeze Parameters",
    category="training",
    description="Freeze the parameters the patterns select (requires_grad False, their gradients cleared, so "
                "Backward gives them none and no optimizer moves them), or unfreeze them. Kept when the model "
                "is stored.",
    inputs=[Port("model", MODEL, "Model to freeze parts of.")],
    outputs=[Port("model", MODEL, "The model with those parameters frozen (or unfrozen).", state_of="model")],
    config=FreezeConfig,
    mutates_state=True,
)
def freeze(config: FreezeConfig, model) -> dict:
    parameters = dict(model.named_parameters())
    for name in select_parameters(list(parameters), config.parameters, "parameters"):
        parameters[name].requires_grad_(not config.freeze)
        if config.freeze:
            parameters[name].grad = None
    return {"model": model}
