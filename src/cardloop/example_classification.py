"""Classification with built-in cards (examples/classification.yaml): the 8x8 handwritten digits shipped with
cardloop, a small 2-D CNN, cross-entropy, AdamW with a warmup + cosine learning-rate schedule stepped after every
batch, and accuracy on the held-out rows after every epoch and at the end."""

from __future__ import annotations

from cardloop.pipeline.model import Pipeline

DIGITS_ROWS = 1797


def classification(*, epochs: int = 10, batch_size: int = 32, learning_rate: float = 0.003,
                   weight_decay: float = 0.01, warmup_epochs: int = 1, channels: tuple[int, ...] = (16, 32),
                   seed: int = 0, name: str = "classification") -> Pipeline:
    """`epochs` shuffled passes over 80 % of the digits (split with seed 0), a CNN over each row's 64 pixels read as
    one 8x8 channel, the warmup (from 1 % of the learning rate) over `warmup_epochs` epochs' batches and the cosine
    over the rest."""
    train_rows = DIGITS_ROWS - int(round(DIGITS_ROWS * 0.2))
    batches = -(-train_rows // batch_size)
    p = Pipeline(name=name, description="Classification of the 8x8 handwritten digits: a small 2-D CNN, "
                                        "cross-entropy, AdamW with a warmup + cosine schedule stepped every batch, "
                                        "and accuracy on the held-out rows after every epoch.")
    data = p.add("data_load", "data", path="cardloop:digits.csv")
    split = p.add("data_split", "split", dataset=data["dataset"], test_fraction=0.2, seed=0)
    model = p.add("model_define", "model", input_dim=64, architecture="cnn2d", input_shape=[1, 8, 8],
                  channels=list(channels), kernel_size=3, layers=[64], output_dim=10, seed=seed)["model"]
    opt = p.add("training_init_optimizer", "opt", model=model, optimizer_type="adamw", learning_rate=learning_rate,
                weight_decay=weight_decay)
    sched = p.add("training_lr_scheduler", "schedule", optimizer=opt["optimizer"], scheduler_type="warmup_cosine",
                  warmup_steps=warmup_epochs * batches, T_max=(epochs - warmup_epochs) * batches, start_factor=0.01)
    epoch = p.add_block("epochs", times=epochs, inputs={
        "train": split["train_dataset"], "val": split["test_dataset"], "model": model, "optimizer": opt["optimizer"],
        "scheduler": sched["scheduler"]})
    it = epoch.body.add("training_batch_iterator", "shuffle", train_dataset=epoch["train"], epoch=epoch["iteration"],
                        batch_size=batch_size, shuffle=True, seed=seed)
    batch = epoch.body.add_block("batches", inputs={"over": it["batches"], "model": epoch["model"],
                                                    "optimizer": epoch["optimizer"], "scheduler": epoch["scheduler"]})
    zero = batch.body.add("training_zero_grad", "zero", optimizer=batch["optimizer"])
    fwd = batch.body.add("training_forward", "fwd", model=batch["model"], batch_data=batch["batch_data"])
    loss = batch.body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"],
                          loss_type="cross_entropy")
    back = batch.body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step = batch.body.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"])
    lr = batch.body.add("training_scheduler_step", "lr_step", scheduler=batch["scheduler"],
                        optimizer=step["optimizer"])
    batch.body.outputs.update(model=str(step["model"]), optimizer=str(lr["optimizer"]),
                              scheduler=str(lr["scheduler"]), loss=str(loss["loss_value"]))
    val = epoch.body.add("evaluate", "validate", model=batch["model"], dataset=epoch["val"], task="classification")
    epoch.body.outputs.update(model=str(batch["model"]), optimizer=str(batch["optimizer"]),
                              scheduler=str(batch["scheduler"]), loss=str(batch["loss"]),
                              val_accuracy=str(val["accuracy"]))
    p.add("evaluate", "evaluate", model=epoch["model"], dataset=split["test_dataset"], task="classification")
    return p
