"""Pipelines with loop blocks, built in code (docs/blocks.md), and the hand-written loop they must match."""

from __future__ import annotations

from typing import Any

from cardloop.pipeline.model import Card, Pipeline


def _model_and_batch(p: Pipeline, csv_path: Any, learning_rate: float = 0.05) -> tuple[Card, Card, Card]:
    data = p.add("data_load", "data", path=str(csv_path))
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)
    opt = p.add("training_init_optimizer", "opt", model=model["model"], optimizer_type="sgd",
                learning_rate=learning_rate)
    batch = p.add("training_prepare_batch", "batch", train_dataset=data["dataset"], batch_index=0, batch_size=16)
    return model, opt, batch


def _steps_body(steps: Card, when: dict | None = None, loss_when: dict | None = None) -> None:
    """The guide's step on the block's batch; `when`: the optimizer step's condition, `loss_when` the loss's."""
    body = steps.body
    zero = body.add("training_zero_grad", "zero", optimizer=steps["optimizer"])
    fwd = body.add("training_forward", "fwd", model=steps["model"], batch_data=steps["batch"])
    loss = body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=steps["batch"],
                    when=loss_when)
    back = body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step = body.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"], when=when)
    body.outputs = {"model": str(step["model"]), "optimizer": str(step["optimizer"]), "loss": str(loss["loss_value"])}


def steps_pipeline(csv_path: Any, times: int = 5, when: dict | None = None, loss_when: dict | None = None,
                   learning_rate: float = 0.05) -> Pipeline:
    """data, model, optimizer, one batch, then a block `steps` that trains on that batch `times` times."""
    p = Pipeline(name="steps")
    model, opt, batch = _model_and_batch(p, csv_path, learning_rate)
    steps = p.add_block("steps", inputs={"model": model["model"], "optimizer": opt["optimizer"],
                                         "batch": batch["batch_data"]}, times=times)
    _steps_body(steps, when, loss_when)
    return p


def nested_pipeline(csv_path: Any, epochs: int = 2, steps: int = 3, when: dict | None = None) -> Pipeline:
    """A block `epochs` whose body holds a block `batches` of `steps` training steps on one batch, then a card
    that reads the model (`fwd_end`: its predictions after each epoch)."""
    p = Pipeline(name="nested")
    model, opt, batch = _model_and_batch(p, csv_path)
    outer = p.add_block("epochs", inputs={"model": model["model"], "optimizer": opt["optimizer"],
                                          "batch": batch["batch_data"]}, times=epochs)
    inner = outer.body.add_block("batches", inputs={"model": outer["model"], "optimizer": outer["optimizer"],
                                                    "batch": outer["batch"]}, times=steps)
    _steps_body(inner, when)
    check = outer.body.add("training_forward", "check", model=inner["model"], batch_data=outer["batch"])
    score = outer.body.add("training_loss", "score", predictions=check["predictions"], batch_data=outer["batch"])
    outer.body.outputs = {"model": str(inner["model"]), "optimizer": str(inner["optimizer"]),
                          "score": str(score["loss_value"])}
    return p


def hand_written_losses(csv_path: Any, steps: int) -> list[float]:
    """The loss of each of `steps` SGD steps on the first 16 rows, as a hand-written PyTorch loop computes it."""
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from tests.oracle import build_mlp

    frame = pd.read_csv(csv_path).iloc[:16]
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(4, [8])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def around_pipeline(csv_path: Any, times: int = 3) -> Pipeline:
    """steps_pipeline with a top-level loss before the block (of the untrained model) and one after it (of the
    trained model): a metric made in three places."""
    p = steps_pipeline(csv_path, times=times)
    steps = p.cards.pop()
    batch = p.card("batch")
    before = p.add("training_forward", "fwd_before", model=p.card("model")["model"], batch_data=batch["batch_data"])
    p.add("training_loss", "loss_before", predictions=before["predictions"], batch_data=batch["batch_data"])
    p.cards.append(steps)
    after = p.add("training_forward", "fwd_after", model=steps["model"], batch_data=batch["batch_data"])
    p.add("training_loss", "loss_after", predictions=after["predictions"], batch_data=batch["batch_data"])
    return p
