"""Every scheduler type as a card config and as torch builds it by hand, the hand-written loop that steps it, and the
card pipelines (unrolled, loop blocks, training_loop) that must match that loop bit for bit."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch.optim import lr_scheduler as torch_schedulers
from torch.utils.data import DataLoader, TensorDataset

from cardloop.examples import add_training_step
from cardloop.pipeline.model import Pipeline
from tests.oracle import build_mlp

BATCH_SIZE = 16
BATCHES = 7  # 100 rows of regression_csv in batches of 16
STEPS = 2 * BATCHES  # two passes
LEARNING_RATE = 0.01

#: scheduler_type -> (the card's config, how torch builds that scheduler by hand). The horizons are short, so
#: that every type changes the learning rate within STEPS steps; plateau watches the loss with mode max, so that a
#: falling loss counts as no improvement and the rate is cut.
SCHEDULERS: dict[str, tuple[dict[str, Any], Callable[[torch.optim.Optimizer], Any]]] = {
    "step": ({"step_size": 3, "gamma": 0.5}, lambda o: torch_schedulers.StepLR(o, step_size=3, gamma=0.5)),
    "multistep": ({"milestones": [2, 5, 9], "gamma": 0.3},
                  lambda o: torch_schedulers.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3)),
    "exponential": ({"gamma": 0.9}, lambda o: torch_schedulers.ExponentialLR(o, gamma=0.9)),
    "cosine": ({"T_max": 8, "eta_min": 0.001}, lambda o: torch_schedulers.CosineAnnealingLR(o, T_max=8, eta_min=0.001)),
    "linear_warmup": ({"start_factor": 0.2, "total_iters": 4},
                      lambda o: torch_schedulers.LinearLR(o, start_factor=0.2, total_iters=4)),
    "warmup_cosine": ({"warmup_steps": 3, "T_max": 9, "start_factor": 0.1, "eta_min": 0.0005},
                      lambda o: torch_schedulers.SequentialLR(o, [
                          torch_schedulers.LinearLR(o, start_factor=0.1, total_iters=3),
                          torch_schedulers.CosineAnnealingLR(o, T_max=9, eta_min=0.0005)], milestones=[3])),
    "one_cycle": ({"max_lr": 0.05, "total_steps": STEPS},
                  lambda o: torch_schedulers.OneCycleLR(o, max_lr=0.05, total_steps=STEPS)),
    "reduce_on_plateau": ({"mode": "max", "factor": 0.5, "patience": 1},
                          lambda o: torch_schedulers.ReduceLROnPlateau(o, mode="max", factor=0.5, patience=1)),
}
TYPES = list(SCHEDULERS)


def plateau(scheduler_type: str) -> bool:
    return scheduler_type == "reduce_on_plateau"


def hand_loop(csv, scheduler_type: str, steps: int = STEPS, per_pass: bool = False
              ) -> tuple[torch.nn.Module, list[float], Any]:
    """Adam over the MLP, `steps` steps over the file's batches in order, the scheduler stepped after each
    optimizer step (`per_pass`: after each pass, plateau on the pass's mean loss); (model, lr after each scheduler
    step, scheduler)."""
    frame = pd.read_csv(csv)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    batches = list(DataLoader(TensorDataset(X, y), batch_size=BATCH_SIZE))
    model = build_mlp(4, [8])
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = SCHEDULERS[scheduler_type][1](optimizer)
    lrs, losses = [], []
    for step in range(steps):
        xb, yb = batches[step % BATCHES]
        optimizer.zero_grad()
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if per_pass and (step + 1) % BATCHES:
            continue
        span = BATCHES if per_pass else 1
        scheduler.step(sum(losses[-span:]) / span) if plateau(scheduler_type) else scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return model, lrs, scheduler


def _start(p: Pipeline, csv, scheduler_type: str, config: dict[str, Any] | None = None) -> tuple:
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)["model"]
    optimizer = p.add("training_init_optimizer", "opt", model=model, learning_rate=LEARNING_RATE)["optimizer"]
    scheduler = p.add("training_lr_scheduler", "sched", optimizer=optimizer, scheduler_type=scheduler_type,
                      **(config or SCHEDULERS[scheduler_type][0]))["scheduler"]
    return data["dataset"], model, optimizer, scheduler


def unrolled(csv, scheduler_type: str, steps: int = STEPS) -> Pipeline:
    """The guide's six cards per step and a Scheduler Step card after each Optimizer Step (`lr{i}`)."""
    p = Pipeline(name=f"unrolled-{scheduler_type}")
    data, model, optimizer, scheduler = _start(p, csv, scheduler_type)
    for i in range(steps):
        model, optimizer, _ = add_training_step(p, i, data, model, optimizer, batch_size=BATCH_SIZE,
                                                batch_index=i % BATCHES)
        metric = {"metric": p.card(f"loss{i}")["loss_value"]} if plateau(scheduler_type) else {}
        stepped = p.add("training_scheduler_step", f"lr{i}", scheduler=scheduler, optimizer=optimizer, **metric)
        scheduler, optimizer = stepped["scheduler"], stepped["optimizer"]
    return p


def blocks(csv, scheduler_type: str, epochs: int = 2, config: dict[str, Any] | None = None) -> Pipeline:
    """Loop blocks: `epochs` passes over the Batch Iterator, the Scheduler Step inside the batches block (`config`:
    the scheduler's, instead of SCHEDULERS')."""
    p = Pipeline(name=f"blocks-{scheduler_type}")
    data, model, optimizer, scheduler = _start(p, csv, scheduler_type, config)
    epoch = p.add_block("epochs", times=epochs, inputs={"train": data, "model": model, "optimizer": optimizer,
                                                        "scheduler": scheduler})
    it = epoch.body.add("training_batch_iterator", "it", train_dataset=epoch["train"], epoch=epoch["iteration"],
                        batch_size=BATCH_SIZE)
    batch = epoch.body.add_block("batches", inputs={"over": it["batches"], "model": epoch["model"],
                                                    "optimizer": epoch["optimizer"], "scheduler": epoch["scheduler"]})
    body = batch.body
    zero = body.add("training_zero_grad", "zero", optimizer=batch["optimizer"])
    fwd = body.add("training_forward", "fwd", model=batch["model"], batch_data=batch["batch_data"])
    loss = body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"])
    back = body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step = body.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"])
    metric = {"metric": loss["loss_value"]} if plateau(scheduler_type) else {}
    sched = body.add("training_scheduler_step", "sched_step", scheduler=batch["scheduler"],
                     optimizer=step["optimizer"], **metric)
    body.outputs.update(model=str(step["model"]), optimizer=str(sched["optimizer"]),
                        scheduler=str(sched["scheduler"]), lr=str(sched["lr"]))
    epoch.body.outputs.update(model=str(batch["model"]), optimizer=str(batch["optimizer"]),
                              scheduler=str(batch["scheduler"]), lr=str(batch["lr"]))
    return p


def looped(csv, scheduler_type: str, epochs: int = 2, interval: str = "step") -> Pipeline:
    """One training_loop card with the scheduler."""
    p = Pipeline(name=f"loop-{scheduler_type}")
    data, model, optimizer, scheduler = _start(p, csv, scheduler_type)
    p.add("training_loop", "loop", train_dataset=data, model=model, optimizer=optimizer, scheduler=scheduler,
          epochs=epochs, batch_size=BATCH_SIZE, scheduler_interval=interval)
    return p
