"""The loss examples (cardloop.example_losses): MSE + L1 regularization with built-in cards, and skipping the
optimizer step when the loss is not finite; the committed files are what make_examples.py writes, they run, and
their builders train as the hand-written loops do, bit for bit, on both executors."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import cardloop
from cardloop.engine import process
from cardloop.example_losses import mse_l1_regularization, skip_nonfinite_step
from cardloop.pipeline.fileformat import load_pipeline
from tests.oracle import assert_same_weights, build_mlp

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = ["mse_l1_regularization.yaml", "skip_nonfinite_step.yaml"]
SMALL = dict(input_dim=4, layers=(8,), prepare=False, batch_size=16, learning_rate=0.01)


@pytest.fixture(autouse=True)
def _no_workers_left():
    yield
    process.stop_workers()


def test_the_committed_loss_examples_are_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)], check=True,
                   capture_output=True)
    for name in FILES:
        assert (tmp_path / name).read_text() == (EXAMPLES / name).read_text(), \
            f"examples/{name} is out of date: run python examples/make_examples.py"


def hand_written_loop(csv, *, epochs: int, l1_weight: float | None = None, skip_nonfinite: bool = False,
                      shuffle: bool = True) -> tuple[torch.nn.Module, list[float]]:
    """Adam on MSE (+ l1_weight * sum(|p|)), the rows shuffled each epoch as the Batch Iterator does; with
    skip_nonfinite, a batch whose loss is not finite is neither back-propagated nor stepped."""
    frame = pd.read_csv(csv)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(4, [8])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for epoch in range(epochs):
        generator = torch.Generator().manual_seed(epoch) if shuffle else None
        for xb, yb in DataLoader(TensorDataset(X, y), batch_size=16, shuffle=shuffle, generator=generator):
            optimizer.zero_grad()
            loss = F.mse_loss(model(xb), yb)
            if l1_weight is not None:
                loss = loss + l1_weight * sum(p.abs().sum() for p in model.parameters())
            losses.append(loss.item())
            if skip_nonfinite and not torch.isfinite(loss):
                continue
            loss.backward()
            optimizer.step()
    return model, losses


# --- MSE + L1 regularization


def test_the_mse_l1_example_trains_with_the_penalty_added_and_evaluates(store):
    pipeline = load_pipeline(EXAMPLES / "mse_l1_regularization.yaml")
    assert "regularization" in [card.type for card in pipeline.card("epochs").body.cards[1].body.cards]
    result = cardloop.run(pipeline, store=store)
    epochs = result.outputs["epochs"]
    assert 1 <= len(epochs["loss"]) <= 5 and all(len(losses) == 45 for losses in epochs["loss"])
    for regularized, mse in zip(epochs["loss"], epochs["mse"]):
        assert all(total > alone for total, alone in zip(regularized, mse))  # the L1 penalty is positive
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.2


@pytest.mark.parametrize("executor", ["local", "process"])
def test_the_mse_l1_builder_trains_as_the_hand_written_loop_bit_for_bit(regression_csv, store, executor):
    pipeline = mse_l1_regularization(path=str(regression_csv), epochs=2, l1_weight=0.01, **SMALL)
    result = cardloop.run(pipeline, store=store, executor=executor, threads=1)
    model, losses = hand_written_loop(regression_csv, epochs=2, l1_weight=0.01)
    assert_same_weights(cardloop.load_output(result.run_id, "epochs", "model", store=store), model)
    assert [loss for epoch in result.outputs["epochs"]["loss"] for loss in epoch] == losses


# --- skipping the optimizer step when the loss is not finite


def test_the_skip_example_trains_every_step_of_finite_data_and_evaluates(store):
    result = cardloop.run(load_pipeline(EXAMPLES / "skip_nonfinite_step.yaml"), store=store)
    steps = [info for epoch in result.outputs["epochs"]["steps"] for info in epoch]
    assert steps and all(info is not None for info in steps)
    assert steps[-1]["step"] == len(steps)
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.2


@pytest.fixture
def csv_with_inf(regression_csv, tmp_path):
    """The regression rows with an infinite feature in row 20: the second batch of 16 has a loss of NaN."""
    frame = pd.read_csv(regression_csv)
    frame.loc[20, "a"] = math.inf
    path = tmp_path / "with_inf.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_batch_whose_loss_is_not_finite_is_skipped_as_the_hand_written_loop_skips_it(csv_with_inf, store, executor):
    pipeline = skip_nonfinite_step(path=str(csv_with_inf), epochs=1, shuffle=False, **SMALL)
    result = cardloop.run(pipeline, store=store, executor=executor, threads=1)
    [steps] = result.outputs["epochs"]["steps"]
    [losses] = result.outputs["epochs"]["loss"]
    assert math.isnan(losses[1]) and steps[1] is None  # batch 1 holds row 20: its step was skipped
    assert [info["step"] for info in steps if info is not None] == list(range(1, len(steps)))
    model, hand_losses = hand_written_loop(csv_with_inf, epochs=1, skip_nonfinite=True, shuffle=False)
    assert_same_weights(result.outputs["epochs"]["model"], model)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [str(loss) for loss in losses] == [str(loss) for loss in hand_losses]


def test_a_skipped_batch_leaves_the_weights_as_the_batch_before_left_them(csv_with_inf, store):
    pipeline = skip_nonfinite_step(path=str(csv_with_inf), epochs=1, shuffle=False, **SMALL)

    def weights_after(batch: int) -> dict:
        """The block's model right after iteration `batch`, from a run stopped there."""
        stopped = cardloop.run(pipeline, store=store, threads=1, cache=False, until=f"epochs[0].batches[{batch}]")
        return {name: p.detach().clone() for name, p in stopped.outputs["epochs"]["model"].named_parameters()}

    first, skipped, third = weights_after(0), weights_after(1), weights_after(2)
    assert all(torch.equal(first[name], skipped[name]) for name in first)  # batch 1's loss is NaN: nothing changed
    assert not all(torch.equal(skipped[name], third[name]) for name in skipped)  # batch 2 stepped
