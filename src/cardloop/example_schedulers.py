"""Example pipelines with learning-rate schedulers (examples/warmup_cosine.yaml is generated from these)."""

from __future__ import annotations

from typing import Any

from cardloop.examples import loop_blocks
from cardloop.pipeline.model import Pipeline


def warmup_cosine(*, warmup_steps: int, T_max: int, start_factor: float = 0.01, eta_min: float = 0.0,
                  epochs: int = 10, name: str = "warmup-cosine", **loop: Any) -> Pipeline:
    """The Basic Training Loop as loop blocks (`cardloop.examples.loop_blocks`, without early stopping, so that
    the whole schedule runs) with a warmup + cosine schedule stepped after every batch's Optimizer Step: the
    learning rate rises linearly from start_factor x the optimizer's over `warmup_steps` batches, then follows a
    cosine down to `eta_min` over `T_max` batches. Every step's learning rate is recorded (the `lr` metric) and
    collected by the blocks (`epochs.lr`, one list per epoch)."""
    p = loop_blocks(epochs=epochs, patience=None, name=name, **loop)
    p.description = ("The Basic Training Loop as loop blocks with a warmup + cosine learning-rate schedule, "
                     "stepped after every batch: linear warmup, then cosine annealing, the rate recorded each step.")
    sched = p.add("training_lr_scheduler", "schedule", optimizer=p.card("opt")["optimizer"],
                  scheduler_type="warmup_cosine", warmup_steps=warmup_steps, T_max=T_max, start_factor=start_factor,
                  eta_min=eta_min)
    p.cards.remove(sched)
    p.cards.insert(p.index("opt") + 1, sched)
    epoch = p.card("epochs")
    epoch.inputs["scheduler"] = str(sched["scheduler"])
    batch = next(card for card in epoch.body.cards if card.id == "batches")
    batch.inputs["scheduler"] = str(epoch["scheduler"])
    step = batch.body.add("training_scheduler_step", "lr_step", scheduler=batch["scheduler"],
                          optimizer=batch.body.cards[-1]["optimizer"])  # after the Optimizer Step
    batch.body.outputs.update(optimizer=str(step["optimizer"]), scheduler=str(step["scheduler"]), lr=str(step["lr"]))
    epoch.body.outputs.update(scheduler=str(batch["scheduler"]), lr=str(batch["lr"]))
    return p
