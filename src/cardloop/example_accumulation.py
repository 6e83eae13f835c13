"""Gradient accumulation examples (docs/accumulation.md), both ways: by the shape of the graph in loop blocks,
and as the Training Loop card's `accumulate` setting. Both step once every k batches and once more with the
leftover at an epoch's end, the loss of every batch divided by k; they train alike, bit for bit."""

from __future__ import annotations

from cardloop.examples import _model_and_data, training_loop
from cardloop.pipeline.model import Pipeline


def window_end(k: int, loop: str = "batches") -> dict:
    """The `when` of the cards that close an accumulation window: every k batches of `loop`, and its epoch's last
    batch (the Batch Iterator's `is_last`), where a short leftover window steps too."""
    return {"any": [{"every": k, "of": loop}, {"value": f"{loop}.is_last", "equals": True}]}


def accumulation_blocks(*, path: str = "cardloop:diabetes.csv", accumulate: int = 4, epochs: int = 3,
                        batch_size: int = 8, input_dim: int = 10, layers: tuple[int, ...] = (64, 64),
                        optimizer_type: str = "adam", learning_rate: float = 0.001, loss_type: str = "mse",
                        gradient_clip: float = 0.0, shuffle: bool = True, seed: int = 0, prepare: bool = True,
                        evaluate: bool = True, name: str = "gradient-accumulation") -> Pipeline:
    """`epochs` passes over the Batch Iterator; in each batch Forward, Calculate Loss (scale 1/accumulate) and
    Backward; Optimizer Step and then Zero Gradients when a window closes (`window_end`). With `prepare`, the
    data is split 80/20 and standardized, and the held-out rows are evaluated at the end."""
    p = Pipeline(name=name, description=f"Gradient accumulation by the shape of the graph: Forward, Loss (scale "
                                        f"1/{accumulate}) and Backward every batch; Optimizer Step and Zero "
                                        f"Gradients every {accumulate} batches and at each epoch's last batch.")
    train, test, model, optimizer = _model_and_data(p, path, prepare, input_dim, layers, optimizer_type,
                                                    learning_rate, 0.0)
    epoch = p.add_block("epochs", times=epochs, inputs={"train": train, "model": model, "optimizer": optimizer})
    it = epoch.body.add("training_batch_iterator", "shuffle", train_dataset=epoch["train"], epoch=epoch["iteration"],
                        batch_size=batch_size, shuffle=shuffle, seed=seed)
    batch = epoch.body.add_block("batches", inputs={"over": it["batches"], "model": epoch["model"],
                                                    "optimizer": epoch["optimizer"]})
    fwd = batch.body.add("training_forward", "fwd", model=batch["model"], batch_data=batch["batch_data"])
    loss = batch.body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"],
                          loss_type=loss_type, scale=1 / accumulate)
    back = batch.body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step = batch.body.add("training_optimizer_step", "step", optimizer=batch["optimizer"], model=back["model"],
                          gradient_clip=gradient_clip, when=window_end(accumulate))
    zero = batch.body.add("training_zero_grad", "zero", optimizer=step["optimizer"], when=window_end(accumulate))
    batch.body.outputs.update(model=str(step["model"]), optimizer=str(zero["optimizer"]),
                              loss=str(loss["loss_value"]))
    epoch.body.outputs.update(model=str(batch["model"]), optimizer=str(batch["optimizer"]), loss=str(batch["loss"]))
    if evaluate and test is not None:
        p.add("evaluate", "evaluate", model=epoch["model"], dataset=test)
    return p


def accumulation_loop(*, accumulate: int = 4, name: str = "gradient-accumulation-loop", **options) -> Pipeline:
    """The Training Loop card with `accumulate`: it trains as `accumulation_blocks` with the same options does
    (`options`: those of cardloop.examples.training_loop)."""
    p = training_loop(name=name, **options)
    p.description = (f"Gradient accumulation as a setting: the Training Loop card with accumulate: {accumulate} "
                     f"steps once every {accumulate} batches and at each epoch's end.")
    p.card("loop").config["accumulate"] = accumulate
    return p
