"""Example pipelines of the guide's custom training loops with losses (examples/make_examples.py writes them):
MSE + L1 regularization with built-in cards only, and skipping the optimizer step when the loss is not finite.
Both are the Basic Training Loop as loop blocks (cardloop.examples.loop_blocks) with its batch step changed."""

from __future__ import annotations

from typing import Any

from cardloop.examples import loop_blocks
from cardloop.pipeline.model import Body, Card, Pipeline


def mse_l1_regularization(*, l1_weight: float = 1e-4, name: str = "mse-l1-regularization",
                          **options: Any) -> Pipeline:
    """The guide's "Custom loss with regularization" (Forward Pass, Calculate Loss (MSE), Add L1 Regularization,
    Backward Pass, Optimizer Step) with the built-in `regularization` card: loss + l1_weight * sum(|p|) over every
    parameter. `options` go to loop_blocks (epochs, batch_size, path, ...). The blocks collect the regularized
    loss as `loss` and the MSE alone as `mse`."""
    p = loop_blocks(name=name, **options)
    p.description = ("The Basic Training Loop as loop blocks, with an L1 penalty on every parameter added to the "
                     "MSE between Calculate Loss and Backward Pass (the built-in regularization card).")
    body = batches_body(p)
    position = next(i for i, card in enumerate(body.cards) if card.id == "loss")
    l1 = Card(id="l1", type="regularization", inputs={"loss": "loss.loss", "model": "fwd.model"},
              config={"norm": "l1", "weight": l1_weight})
    body.cards.insert(position + 1, l1)
    _card(body, "back").inputs["loss"] = "l1.loss"
    body.outputs.update(loss="l1.loss_value", mse="loss.loss_value")
    p.card("epochs").body.outputs["mse"] = "batches.mse"
    return p


def skip_nonfinite_step(*, name: str = "skip-nonfinite-step", **options: Any) -> Pipeline:
    """The Basic Training Loop as loop blocks where a batch whose loss is not finite (NaN or ±inf: a bad row, a
    diverging step) changes nothing: its Backward Pass and Optimizer Step run only `when: {finite: loss.loss_value}`.
    Skipping the step alone would leave that batch's NaN gradients in the model for whatever reads them next.
    `options` go to loop_blocks. The blocks collect each step's `step_info` (null where skipped) as `steps`."""
    p = loop_blocks(name=name, **options)
    p.description = ("The Basic Training Loop as loop blocks that skips Backward Pass and Optimizer Step for a batch "
                     "whose loss is not finite, so that such a batch leaves weights, gradients and optimizer as "
                     "they were.")
    body = batches_body(p)
    for card_id in ("back", "step"):
        _card(body, card_id).when = {"finite": "loss.loss_value"}
    body.outputs["steps"] = "step.step_info"
    p.card("epochs").body.outputs["steps"] = "batches.steps"
    return p


def batches_body(p: Pipeline) -> Body:
    """The body of loop_blocks' inner block (`epochs` → `batches`): the training step of one batch."""
    return _card(p.card("epochs").body, "batches").body


def _card(body: Body, card_id: str) -> Card:
    return next(card for card in body.cards if card.id == card_id)
