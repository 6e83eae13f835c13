"""examples/warmup_cosine.yaml: what make_examples.py writes, and run, it trains the diabetes loop with the learning
rate torch's SequentialLR(LinearLR, CosineAnnealingLR) gives at every step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from torch.optim import lr_scheduler

import cardloop
from cardloop.pipeline.fileformat import load_pipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "warmup_cosine.yaml"
EPOCHS, BATCHES = 10, 45  # 354 training rows in batches of 8


def torch_schedule(steps: int) -> list[float]:
    """The learning rate after each scheduler step of torch's warmup + cosine over Adam(lr=0.01)."""
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.01)
    schedule = lr_scheduler.SequentialLR(optimizer, [
        lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=BATCHES),
        lr_scheduler.CosineAnnealingLR(optimizer, T_max=BATCHES * (EPOCHS - 1), eta_min=0.0)], milestones=[BATCHES])
    lrs = []
    for _ in range(steps):
        optimizer.step()
        schedule.step()
        lrs.append(schedule.get_last_lr()[0])
    return lrs


def test_the_committed_example_is_what_make_examples_writes(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)], check=True,
                   capture_output=True)
    assert (tmp_path / EXAMPLE.name).read_text() == EXAMPLE.read_text(), \
        "examples/warmup_cosine.yaml is out of date: run python examples/make_examples.py"


def test_the_example_steps_warmup_then_cosine_after_every_batch_as_torch_does(store):
    pipeline = load_pipeline(EXAMPLE)
    assert pipeline.card("schedule").config == {"scheduler_type": "warmup_cosine", "warmup_steps": 45, "T_max": 405,
                                                "start_factor": 0.01, "eta_min": 0.0}
    result = cardloop.run(pipeline, store=store, threads=1)
    epochs = result.outputs["epochs"]
    lrs = torch_schedule(EPOCHS * BATCHES)
    assert [lr for epoch in epochs["lr"] for lr in epoch] == lrs
    assert result.metrics("lr") == lrs  # recorded every step
    assert max(lrs) == lrs[BATCHES - 1] == 0.01 and lrs[-1] == 0.0  # up to the base rate, then down to eta_min
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.2
