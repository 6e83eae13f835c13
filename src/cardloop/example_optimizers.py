"""The guide's "different optimizers for different parts" as a pipeline of loop blocks (examples/two_optimizers.yaml):
two Initialize Optimizer cards, each training its own part of one model, and in every batch a Zero Gradients and
an Optimizer Step for each."""

from __future__ import annotations

from typing import Any

from cardloop.examples import data_and_model
from cardloop.pipeline.model import Pipeline

BODY = {"optimizer_type": "sgd", "learning_rate": 0.01, "momentum": 0.9, "parameters": ["0.*"]}
HEAD = {"optimizer_type": "adam", "learning_rate": 0.001, "parameters": ["2.*", "4.*"]}


def two_optimizers(*, path: str = "cardloop:diabetes.csv", epochs: int = 10, batch_size: int = 8, input_dim: int = 10,
                   layers: tuple[int, ...] = (64, 64), body: dict[str, Any] | None = None,
                   head: dict[str, Any] | None = None, prepare: bool = True, shuffle: bool = True, seed: int = 0,
                   name: str = "two-optimizers") -> Pipeline:
    """`epochs` passes over the Batch Iterator (shuffled with seed + epoch) training the model's first layer with
    the `body` optimizer's config (default SGD with momentum on "0.*") and the layers after it with the `head`'s
    (default Adam on "2.*" and "4.*"). With `prepare`, the data is split 80/20 and standardized first and the
    held-out rows are evaluated at the end."""
    p = Pipeline(name=name, description="Different optimizers for different parts of one model: SGD with momentum "
                                        "trains the first layer, Adam the layers after it; each has its own Zero "
                                        "Gradients and Optimizer Step in every batch.")
    train, test, model = data_and_model(p, path, prepare, input_dim, layers)
    opt_body = p.add("training_init_optimizer", "opt_body", model=model, **(body or BODY))
    opt_head = p.add("training_init_optimizer", "opt_head", model=model, **(head or HEAD))
    epoch = p.add_block("epochs", times=epochs, inputs={"train": train, "model": model, "body": opt_body["optimizer"],
                                                        "head": opt_head["optimizer"]})
    it = epoch.body.add("training_batch_iterator", "shuffle", train_dataset=epoch["train"], epoch=epoch["iteration"],
                        batch_size=batch_size, shuffle=shuffle, seed=seed)
    batch = epoch.body.add_block("batches", inputs={"over": it["batches"], "model": epoch["model"],
                                                    "body": epoch["body"], "head": epoch["head"]})
    zero_body = batch.body.add("training_zero_grad", "zero_body", optimizer=batch["body"])
    zero_head = batch.body.add("training_zero_grad", "zero_head", optimizer=batch["head"])
    fwd = batch.body.add("training_forward", "fwd", model=batch["model"], batch_data=batch["batch_data"])
    loss = batch.body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"])
    back = batch.body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step_body = batch.body.add("training_optimizer_step", "step_body", optimizer=zero_body["optimizer"],
                               model=back["model"])
    step_head = batch.body.add("training_optimizer_step", "step_head", optimizer=zero_head["optimizer"],
                               model=step_body["model"])
    batch.body.outputs.update(model=str(step_head["model"]), body=str(step_body["optimizer"]),
                              head=str(step_head["optimizer"]), loss=str(loss["loss_value"]))
    epoch.body.outputs.update(model=str(batch["model"]), body=str(batch["body"]), head=str(batch["head"]),
                              loss=str(batch["loss"]))
    if test is not None:
        p.add("evaluate", "evaluate", model=epoch["model"], dataset=test)
    return p
