"""Example pipelines built with the Python API (the files in examples/ are generated from these)."""

from __future__ import annotations

from cardloop.pipeline.model import OutputRef, Pipeline


def add_training_step(p: Pipeline, i: int, dataset: OutputRef, model: OutputRef, optimizer: OutputRef, *,
                      batch_size: int = 32, loss_type: str = "mse", gradient_clip: float = 0.0,
                      zero_grad: bool = True, l1_weight: float | None = None, batch_index: int | None = None,
                      shuffle: dict | None = None) -> tuple[OutputRef, OutputRef, OutputRef]:
    """Append the guide's standard training step for batch `i`; returns (model, optimizer, loss) outputs.

    With `l1_weight`, an `l1_regularization` card (examples/cards/l1_regularization.py) sits between
    Calculate Loss and Backward Pass, as in the guide's "Custom loss with regularization". `batch_index`: the
    batch of the epoch (default i); `shuffle`: Prepare Batch's shuffle, seed and epoch.
    """
    batch = p.add("training_prepare_batch", f"batch{i}", train_dataset=dataset,
                  batch_index=i if batch_index is None else batch_index, batch_size=batch_size, **(shuffle or {}))
    if zero_grad:
        optimizer = p.add("training_zero_grad", f"zero{i}", optimizer=optimizer)["optimizer"]
    fwd = p.add("training_forward", f"fwd{i}", model=model, batch_data=batch["batch_data"], batch_index=i)
    loss = p.add("training_loss", f"loss{i}", predictions=fwd["predictions"], batch_data=batch["batch_data"],
                 loss_type=loss_type)
    loss_out = loss["loss"]
    if l1_weight is not None:
        loss_out = p.add("l1_regularization", f"l1_{i}", loss=loss_out, model=fwd["model"], weight=l1_weight)["loss"]
    back = p.add("training_backward", f"back{i}", loss=loss_out, model=fwd["model"])
    step = p.add("training_optimizer_step", f"step{i}", optimizer=optimizer, model=back["model"],
                 gradient_clip=gradient_clip)
    return step["model"], step["optimizer"], loss_out


def data_and_model(p: Pipeline, path: str, prepare: bool, input_dim: int, layers: tuple[int, ...]) -> tuple:
    """Load (and with `prepare`, split 80/20 and standardize) and define the MLP; returns (train, test or None,
    model) outputs."""
    data = p.add("data_load", "data", path=path)
    train, test = data["dataset"], None
    if prepare:
        split = p.add("data_split", "split", dataset=data["dataset"], test_fraction=0.2, seed=0)
        norm = p.add("data_normalize", "normalize", train_dataset=split["train_dataset"],
                     test_dataset=split["test_dataset"], normalize_targets=True)
        train, test = norm["train_dataset"], norm["test_dataset"]
    model = p.add("model_define", "model", input_dim=input_dim, layers=list(layers), seed=0)["model"]
    return train, test, model


def _model_and_data(p: Pipeline, path: str, prepare: bool, input_dim: int, layers: tuple[int, ...],
                    optimizer_type: str, learning_rate: float, weight_decay: float) -> tuple:
    """data_and_model, then the model's optimizer; returns (train, test or None, model, optimizer) outputs."""
    train, test, model = data_and_model(p, path, prepare, input_dim, layers)
    optimizer = p.add("training_init_optimizer", "opt", model=model, optimizer_type=optimizer_type,
                      learning_rate=learning_rate, weight_decay=weight_decay)["optimizer"]
    return train, test, model, optimizer


def basic_training_loop(*, path: str = "cardloop:diabetes.csv", batches: int, batch_size: int = 32,
                        input_dim: int = 10, layers: tuple[int, ...] = (64, 64), optimizer_type: str = "adam",
                        learning_rate: float = 0.001, weight_decay: float = 0.0, loss_type: str = "mse",
                        gradient_clip: float = 0.0, prepare: bool = True, zero_grad: bool = True,
                        l1_weight: float | None = None, evaluate: bool = True, epochs: int = 1,
                        shuffle: bool = False, seed: int = 0, name: str = "basic-training-loop") -> Pipeline:
    """The guide's Basic Training Loop over `batches` batches (of each of `epochs` passes; with `shuffle`, in
    the order of each epoch's DataLoader generator, seeded with seed + epoch).

    With `prepare`, the data is split 80/20 and standardized (features and target) first, and the held-out
    part is evaluated at the end; without it, batches come straight from the loaded file.
    """
    p = Pipeline(name=name, description="The guide's Basic Training Loop: Model Define, Initialize Optimizer, "
                                        "then Prepare Batch, Zero Gradients, Forward Pass, Calculate Loss, "
                                        "Backward Pass and Optimizer Step for every batch.")
    train, test, model, optimizer = _model_and_data(p, path, prepare, input_dim, layers, optimizer_type,
                                                    learning_rate, weight_decay)
    for i in range(batches * epochs):
        order = {"shuffle": True, "seed": seed, "epoch": i // batches} if shuffle else None
        model, optimizer, _ = add_training_step(p, i, train, model, optimizer, batch_size=batch_size,
                                                loss_type=loss_type, gradient_clip=gradient_clip,
                                                zero_grad=zero_grad, l1_weight=l1_weight, batch_index=i % batches,
                                                shuffle=order)
    if evaluate and test is not None:
        p.add("evaluate", "evaluate", model=model, dataset=test)
    return p


def training_loop(*, path: str = "cardloop:diabetes.csv", batches: int | None = None, epochs: int = 1,
                  batch_size: int = 32, input_dim: int = 10, layers: tuple[int, ...] = (64, 64),
                  optimizer_type: str = "adam", learning_rate: float = 0.001, weight_decay: float = 0.0,
                  loss_type: str = "mse", gradient_clip: float = 0.0, prepare: bool = True, zero_grad: bool = True,
                  evaluate: bool = True, shuffle: bool = False, seed: int = 0, name: str = "training-loop") -> Pipeline:
    """The Basic Training Loop with its steps in one `training_loop` card: `batches` batches (default: all
    of them), `epochs` times. With the same arguments it trains exactly as `basic_training_loop`."""
    p = Pipeline(name=name, description="The Basic Training Loop in one Training Loop card: Model Define, "
                                        "Initialize Optimizer, then every batch's six steps inside the loop card.")
    train, test, model, optimizer = _model_and_data(p, path, prepare, input_dim, layers, optimizer_type,
                                                    learning_rate, weight_decay)
    extent = {} if batches is None else {"num_batches": batches}
    loop = p.add("training_loop", "loop", train_dataset=train, model=model, optimizer=optimizer, epochs=epochs,
                 batch_size=batch_size, **extent, loss_type=loss_type, gradient_clip=gradient_clip,
                 zero_grad=zero_grad, **({"shuffle": True, "seed": seed} if shuffle else {}))
    if evaluate and test is not None:
        p.add("evaluate", "evaluate", model=loop["model"], dataset=test)
    return p


def loop_blocks(*, path: str = "cardloop:diabetes.csv", epochs: int = 10, batch_size: int = 32, input_dim: int = 10,
                layers: tuple[int, ...] = (64, 64), optimizer_type: str = "adam", learning_rate: float = 0.001,
                weight_decay: float = 0.0, loss_type: str = "mse", gradient_clip: float = 0.0, shuffle: bool = True,
                seed: int = 0, prepare: bool = True, patience: int | None = 3, evaluate: bool = True,
                name: str = "basic-training-loop") -> Pipeline:
    """The guide's Basic Training Loop as loop blocks (docs/blocks.md): `epochs` passes over the Batch Iterator
    (shuffled each epoch with seed + epoch), the training steps in a `batches` block; with `prepare`, the
    held-out rows are evaluated after every epoch and, with `patience`, Early Stopping ends training when they
    stop improving. It trains as the unrolled pipeline and the hand-written loop do, bit for bit."""
    p = Pipeline(name=name, description="The guide's Basic Training Loop as loop blocks: epochs over the Batch "
                                        "Iterator, the training steps for every batch, validation after every "
                                        "epoch and early stopping.")
    train, test, model, optimizer = _model_and_data(p, path, prepare, input_dim, layers, optimizer_type,
                                                    learning_rate, weight_decay)
    ports = {"train": train, "model": model, "optimizer": optimizer, **({"val": test} if test is not None else {})}
    epoch = p.add_block("epochs", times=epochs, inputs=ports)
    it = epoch.body.add("training_batch_iterator", "shuffle", train_dataset=epoch["train"], epoch=epoch["iteration"],
                        batch_size=batch_size, shuffle=shuffle, seed=seed)
    batch = epoch.body.add_block("batches", inputs={"over": it["batches"], "model": epoch["model"],
                                                    "optimizer": epoch["optimizer"]})
    zero = batch.body.add("training_zero_grad", "zero", optimizer=batch["optimizer"])
    fwd = batch.body.add("training_forward", "fwd", model=batch["model"], batch_data=batch["batch_data"])
    loss = batch.body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"],
                          loss_type=loss_type)
    back = batch.body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step = batch.body.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"],
                          gradient_clip=gradient_clip)
    batch.body.outputs.update(model=str(step["model"]), optimizer=str(step["optimizer"]),
                              loss=str(loss["loss_value"]))
    epoch.body.outputs.update(model=str(batch["model"]), optimizer=str(batch["optimizer"]), loss=str(batch["loss"]))
    if test is not None:
        val = epoch.body.add("evaluate", "validate", model=batch["model"], dataset=epoch["val"])
        epoch.body.outputs["val_mse"] = str(val["mse"])
        if patience is not None:
            stop = epoch.body.add("training_early_stopping", "stop", metric=val["mse"], state=epoch["early"],
                                  patience=patience)
            epoch.config.update(until=str(stop["stop"]), carry={"early": {"init": None, "next": str(stop["state"])}})
        if evaluate:
            p.add("evaluate", "evaluate", model=epoch["model"], dataset=test)
    return p
