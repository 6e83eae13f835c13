"""`training_best_model`: Lightning's ModelCheckpoint(save_top_k=1) as a card: keep a copy of the model as it is
when its metric improves (Early Stopping's `improved`), carried from one iteration of a loop to the next."""

from __future__ import annotations

from cardloop.cards import early_stopping  # as a module: registering the built-in cards may import this one first
from cardloop.cards.model import clone_model
from cardloop.cards.spec import NoConfig, Port, card
from cardloop.kinds import MODEL, SCALAR


@card(
    "training_best_model",
    title="Best Model",
    category="training",
    description="A copy of the model as it is now when `improved` is true or no best model is given yet; otherwise "
                "the best model given, unchanged. The copy does not follow later training, and the model is left "
                "as it is.",
    inputs=[Port("model", MODEL, "The model being trained."),
            Port("improved", SCALAR, "Whether the model is the best so far (Early Stopping's improved)."),
            Port("best_model", MODEL, "The best model so far (this card's output in the previous iteration); "
                                      "empty at the start.", required=False)],
    outputs=[Port("best_model", MODEL, "The best model: a training state of its own.")],
    config=NoConfig,
)
def best_model(config: NoConfig, model, improved, best_model) -> dict:
    if best_model is None or early_stopping.scalar_input(improved, "improved"):
        return {"best_model": clone_model(model)}
    return {"best_model": best_model}
