"""`training_loop`: the guide's "training loop wrapper card". One card runs what the Basic Training Loop
spells out as six cards per batch (Prepare Batch, Zero Gradients, Forward Pass, Calculate Loss, Backward
Pass, Optimizer Step), for a range of batches and a number of passes, with the same operations in the same
order: its final weights equal the unrolled pipeline's bit for bit. It records every step's loss as the
`loss_value` metric, but keeps no per-step outputs, so it costs what a hand-written loop costs. While it runs
it reports its step and latest loss to the progress bar, at most every REPORT_SECONDS, and offers the run a
checkpoint after every step (kept at the run's checkpoint interval); a run stopped inside it goes on from the
last one. With a learning-rate scheduler it steps the scheduler after every optimizer step, or after every pass
(`scheduler_interval`), as Scheduler Step cards there would (docs/schedulers.md).

With `accumulate: k` (docs/accumulation.md) each batch's loss is back-propagated times 1/k and the optimizer
steps once every k batches and at a pass's end; losses, progress and checkpoints stay per batch (a checkpoint
inside a window holds the model's gradients so far). A scheduler steps after each optimizer step, plateau on the
mean loss of the step's window.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cardloop.batches import SHUFFLE_RULE
from cardloop.cards import schedulers, training  # as modules: registering the built-in cards may import this first
from cardloop.cards.bounds import MAX_EPOCHS, MAX_INT64, MAX_SEED, MIN_SEED
from cardloop.cards.losses import LABEL_SMOOTHING, SMOOTH_L1_BETA, LossType, loss_function
from cardloop.cards.spec import CardConfig, CardContext, Port, card
from cardloop.errors import CardError
from cardloop.kinds import DATAFRAME, INFO, MODEL, OPTIMIZER, SCHEDULER, TENSOR
from cardloop.models import model_device
from cardloop.values import OPTIMIZER_STEPS_ATTR as STEPS_ATTR


#: How often the loop reports its step and latest loss to a progress bar (its context's `report`), at most.
REPORT_SECONDS = 0.2


class TrainingLoopConfig(CardConfig):
    epochs: int = Field(default=1, ge=1, le=MAX_EPOCHS, description="Passes over the batches.")
    batch_size: int = Field(default=32, gt=0, le=MAX_INT64, description="Size of each batch (as Prepare Batch).")
    start_batch: int = Field(default=0, ge=0, le=MAX_INT64, description="Index of the first batch of each pass.")
    num_batches: int | None = Field(
        default=None, ge=1, le=MAX_INT64,
        description="Batches per pass, from start_batch; empty: up to the frame's last batch.")
    target_columns: list[str] | None = Field(
        default=None, description="Override the target columns recorded by the data card.")
    loss_type: LossType = "mse"
    huber_delta: float = Field(default=1.0, gt=0, description="Delta of the huber loss (PyTorch's default 1.0).")
    label_smoothing: float = LABEL_SMOOTHING
    beta: float = SMOOTH_L1_BETA
    gradient_clip: float = Field(default=0.0, ge=0, description="Clip the global gradient norm; 0 = no clipping.")
    zero_grad: bool = Field(
        default=True, description="Clear the gradients before each step; off, they accumulate across steps, "
                                  "as in a pipeline without Zero Gradients cards.")
    shuffle: bool = Field(default=False, description="Shuffle the rows each pass, as DataLoader(shuffle=True).")
    seed: int = Field(default=0, ge=MIN_SEED, le=MAX_SEED, description="Shuffle seed; pass e uses seed + e.")
    drop_last: bool = Field(default=False, description="Leave out the last batch of a pass when it is short.")
    accumulate: int = Field(
        default=1, ge=1, le=MAX_INT64,
        description="Gradient accumulation: back-propagate each batch's loss times 1/accumulate, and clip, step and "
                    "(at the next window's start) zero the gradients once every accumulate batches; a pass's "
                    "last window may be shorter, and steps with what it has. loss_value keeps every batch's "
                    "unscaled loss (docs/accumulation.md).")
    scheduler_interval: Literal["step", "epoch"] = Field(
        default="step", description="Step the scheduler after every optimizer step, or after every pass (epoch); "
                                    "reduce_on_plateau steps on the step's loss, or on the mean loss of the pass.")


@card(
    "training_loop",
    title="Training Loop",
    category="training",
    description="Prepare Batch, Zero Gradients, Forward Pass, Calculate Loss, Backward Pass and Optimizer Step "
                "for every batch of the range, epochs times, in one card (the guide's loop wrapper). "
                + SHUFFLE_RULE.replace("epoch e", "pass e"),
    inputs=[Port("train_dataset", DATAFRAME, "Training dataset (DataFrame)."),
            Port("model", MODEL, "Model to train."),
            Port("optimizer", OPTIMIZER, "Optimizer bound to the model (from Initialize Optimizer)."),
            Port("scheduler", SCHEDULER, "Optional learning-rate scheduler over the optimizer, stepped after every "
                                         "step or pass (scheduler_interval).", required=False)],
    outputs=[Port("model", MODEL, "Trained model.", state_of="model"),
             Port("optimizer", OPTIMIZER, "Optimizer after the last step.", state_of="optimizer"),
             Port("loss_value", TENSOR, "The loss of every step, in order (1-D float32); recorded as the "
                                        "loss_value metric, one value per step.", metric=True),
             Port("loop_info", INFO, "Steps, batches, first and last loss, learning rate, clipping."),
             Port("scheduler", SCHEDULER, "The scheduler after the last step (when one is connected).",
                  state_of="scheduler"),
             Port("lr", TENSOR, "The learning rate after each step of the scheduler, in order (1-D float64; empty "
                                "without one); recorded as the lr metric.", metric=True)],
    config=TrainingLoopConfig,
    mutates_state=True,
)
def training_loop(config: TrainingLoopConfig, train_dataset, model, optimizer, scheduler, ctx: CardContext) -> dict:
    import time

    import torch

    tensors = training.frame_tensors(train_dataset, config.target_columns)
    batches, num_batches = _batch_range(config, tensors.rows)
    training.check_bound(optimizer, model)
    if scheduler is not None:
        schedulers.check_scheduler_bound(scheduler, optimizer)
    per_pass = len(batches) if config.scheduler_interval == "epoch" else 1  # steps between scheduler steps
    device = model_device(model)
    move = tensors.X.device != device
    loss_of = loss_function(config)  # checks that predictions and targets fit the loss, then computes it
    run_model = training.run_model
    clip, zero_grad, size = config.gradient_clip, config.zero_grad, config.batch_size
    parameters = list(model.parameters()) if clip > 0 else []
    seeds = [training.epoch_seed(config.seed, epoch) if config.shuffle else None for epoch in range(config.epochs)]
    k = config.accumulate
    if k > len(batches):  # one short window a pass, its gradient shrunk by len(batches) / k: never meant
        raise CardError(f"config field 'accumulate' is {k}, but a pass has only {len(batches)} batches; valid: 1 to "
                        f"{len(batches)} (a window of accumulated batches ends with its pass)")
    scale = 1.0 / k
    last = len(batches) - 1
    # every micro-batch: its pass (the seed), its batch, whether it opens a window and whether it closes one
    order = [(seed, index, i % k == 0, i % k == k - 1 or i == last)
             for seed in seeds for i, index in enumerate(batches)]
    losses: list[float] = []
    lrs: list[float] = []  # the scheduler's learning rate after each of its steps
    clipped, largest_norm = 0, 0.0
    if ctx.resumed is not None:  # the engine restored model, optimizer and scheduler to this checkpoint
        step, extra = ctx.resumed
        losses, clipped, largest_norm = list(extra["losses"]), extra["clipped"], extra["largest_norm"]
        lrs = list(extra.get("lrs", ()))
        order = order[step:]
    report, checkpoint, steps, clock = ctx.report, ctx.checkpoint, len(losses) + len(order), time.perf_counter
    next_report = clock() if report is not None else float("inf")  # the first step reports, then every REPORT_SECONDS
    rows, rows_seed = tensors, None
    plateau = type(scheduler).__name__ == schedulers.PLATEAU
    try:
        window = len(losses) - (len(losses) % len(batches)) % k  # where the (resumed) window began
        for seed, index, opens, closes in order:
            if seed != rows_seed:  # a new pass: its rows, gathered once when shuffled
                rows, rows_seed = tensors.epoch(seed), seed
            batch = rows.batch(index, size)
            X, y = batch.X, batch.y
            if move:
                X, y = X.to(device), y.to(device)
            if opens:
                window = len(losses)
                if zero_grad:
                    optimizer.zero_grad(set_to_none=True)
            predictions = run_model(model, X)
            loss = loss_of(predictions, y)
            losses.append(loss.item())
            (loss if k == 1 else loss * scale).backward()
            if closes:
                if clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(parameters, clip).item()
                    largest_norm = max(largest_norm, norm)
                    clipped += norm > clip
                optimizer.step()
                if scheduler is not None and (per_pass == 1 or len(losses) % per_pass == 0):
                    since = window if per_pass == 1 else len(losses) - per_pass  # plateau: the mean loss since
                    metric = sum(losses[since:]) / (len(losses) - since) if plateau else None
                    lrs.append(schedulers.step_scheduler(scheduler, metric))
            if checkpoint is not None:  # the run keeps one when its checkpoint interval has passed
                checkpoint(len(losses), {"losses": losses, "clipped": clipped, "largest_norm": largest_norm,
                                         "lrs": lrs})
            if report is not None and next_report <= clock():
                report(len(losses), steps, {"loss_value": losses[-1]})
                next_report = clock() + REPORT_SECONDS
    finally:  # the steps taken count, as each Optimizer Step card counts its own (a checkpoint's optimizer
        # holds the count from before the loop, so a resumed loop adds every step's too)
        steps_taken = optimizer_steps(len(losses), len(batches), k)
        setattr(optimizer, STEPS_ATTR, getattr(optimizer, STEPS_ATTR, 0) + steps_taken)
    info = {"steps": steps_taken, "epochs": config.epochs, "batches": [batches.start, batches.stop - 1],
            "batch_size": size, "num_batches": num_batches, "rows": tensors.rows, "shuffle": config.shuffle,
            "first_loss": losses[0], "last_loss": losses[-1],
            "optimizer_steps": getattr(optimizer, STEPS_ATTR), "learning_rate": optimizer.param_groups[0]["lr"],
            "gradient_clip": clip, "clipped_steps": clipped, "micro_batches": len(losses), "accumulate": k}
    if clip > 0:
        info["max_grad_norm"] = largest_norm
    if scheduler is not None:
        info.update(scheduler=type(scheduler).__name__, scheduler_interval=config.scheduler_interval,
                    scheduler_steps=len(lrs))
    return {"model": model, "optimizer": optimizer, "loss_value": torch.tensor(losses, dtype=torch.float32),
            "loop_info": info, "scheduler": scheduler,
            "lr": torch.tensor(lrs, dtype=torch.float64)}


def optimizer_steps(micro_batches: int, per_pass: int, k: int) -> int:
    """How many optimizer steps the first `micro_batches` batches of passes of `per_pass` batches take, windows
    of k batches from each pass's start, a pass's last window closing at its end."""
    passes, rest = divmod(micro_batches, per_pass)
    return passes * -(-per_pass // k) + rest // k


def _batch_range(config: TrainingLoopConfig, rows: int) -> tuple[range, int]:
    """The batch indices of one pass, and how many batches the frame has (without a short last one under
    drop_last); a range past the frame's end is the user's mistake, named."""
    total = training.check_batch_index("start_batch", config.start_batch, rows, config.batch_size, config.drop_last)
    stop = total if config.num_batches is None else config.start_batch + config.num_batches
    if stop > total:
        raise CardError(f"config field 'num_batches' is {config.num_batches}, but from batch {config.start_batch} "
                        f"only {total - config.start_batch} of the {total} batches remain ({rows} rows in batches "
                        f"of {config.batch_size}); valid: 1 to {total - config.start_batch}, or empty for all")
    return range(config.start_batch, stop), total
