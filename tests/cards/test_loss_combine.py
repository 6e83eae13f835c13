"""loss_combine: a weighted sum of losses with one backward, against the same sum written by hand, on both
executors."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import cardloop
from cardloop import Pipeline
from cardloop.cards.registry import default_registry
from cardloop.engine import process
from cardloop.errors import CardError
from tests.oracle import assert_same_weights, build_mlp


def combine(*losses, **config) -> dict:
    card_type = default_registry().get("loss_combine")
    inputs = {f"loss_{i}": None for i in range(1, 5)}
    inputs.update({f"loss_{i}": loss for i, loss in enumerate(losses, start=1) if loss is not None})
    return card_type.run(config=card_type.config_model(**config), **inputs)


def three_losses(leaf: torch.Tensor) -> list[torch.Tensor]:
    return [leaf.square().mean(), leaf.abs().mean(), leaf.sin().sum()]


def test_the_weighted_sum_and_its_gradient_equal_the_sum_written_by_hand():
    mine, theirs = (torch.linspace(-2, 3, 12).requires_grad_() for _ in range(2))
    out = combine(*three_losses(mine), weights=[1.0, 0.5, -0.25])
    a, b, c = three_losses(theirs)
    expected = 1.0 * a + 0.5 * b + -0.25 * c
    assert torch.equal(out["loss"], expected) and out["loss_value"] == expected.item()
    out["loss"].backward()
    expected.backward()
    assert torch.equal(mine.grad, theirs.grad)


def test_without_weights_every_loss_counts_once():
    a, b = torch.tensor(1.25), torch.tensor(2.5)
    assert combine(a, b)["loss_value"] == 3.75


def test_a_weight_count_that_differs_from_the_connected_losses_is_named():
    a, b = torch.tensor(1.0), torch.tensor(2.0)
    with pytest.raises(CardError, match=r"config field 'weights' has 3 weights, but 2 losses are connected "
                                        r"\(loss_1, loss_2\); give one weight per connected loss"):
        combine(a, b, weights=[1.0, 1.0, 1.0])


def test_a_loss_connected_after_a_gap_is_named():
    a, b = torch.tensor(1.0), torch.tensor(2.0)
    with pytest.raises(CardError, match="input 'loss_4' is connected but 'loss_3' is not; connect the losses in "
                                        "order, from loss_1 on"):
        combine(a, b, None, b)


def test_a_loss_that_is_not_one_number_is_named():
    with pytest.raises(CardError, match=r"input 'loss_2' holds a tensor of shape \(3,\), not a loss"):
        combine(torch.tensor(1.0), torch.ones(3))


def test_loss_1_and_loss_2_are_required_and_the_others_optional():
    card_type = default_registry().get("loss_combine")
    assert [(p.name, p.kind, p.required) for p in card_type.inputs] == [
        ("loss_1", "loss", True), ("loss_2", "loss", True), ("loss_3", "loss", False), ("loss_4", "loss", False)]
    assert card_type.output("loss").kind == "loss" and card_type.output("loss_value").metric


# --- in a training pipeline, on both executors

WEIGHTS = [1.0, 0.5, 0.25]
STEPS = 3


def combined_loss_pipeline(csv) -> Pipeline:
    """The guide's step with three losses of one forward pass (mse, mae, huber), combined, back-propagated once."""
    p = Pipeline(name="combined")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)["model"]
    optimizer = p.add("training_init_optimizer", "opt", model=model, optimizer_type="sgd",
                      learning_rate=0.05)["optimizer"]
    for i in range(STEPS):
        batch = p.add("training_prepare_batch", f"batch{i}", train_dataset=data["dataset"], batch_index=i,
                      batch_size=16)["batch_data"]
        optimizer = p.add("training_zero_grad", f"zero{i}", optimizer=optimizer)["optimizer"]
        fwd = p.add("training_forward", f"fwd{i}", model=model, batch_data=batch)
        losses = [p.add("training_loss", f"{kind}{i}", predictions=fwd["predictions"], batch_data=batch,
                        loss_type=kind)["loss"] for kind in ("mse", "mae", "huber")]
        total = p.add("loss_combine", f"combine{i}", loss_1=losses[0], loss_2=losses[1], loss_3=losses[2],
                      weights=WEIGHTS)
        back = p.add("training_backward", f"back{i}", loss=total["loss"], model=fwd["model"])
        step = p.add("training_optimizer_step", f"step{i}", optimizer=optimizer, model=back["model"])
        model, optimizer = step["model"], step["optimizer"]
    return p


def hand_written_combined_loop(csv) -> tuple[torch.nn.Module, list[float]]:
    frame = pd.read_csv(csv)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(4, [8])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    totals = []
    for _, (xb, yb) in zip(range(STEPS), DataLoader(TensorDataset(X, y), batch_size=16)):
        optimizer.zero_grad()
        predictions = model(xb)
        loss = 1.0 * F.mse_loss(predictions, yb) + 0.5 * F.l1_loss(predictions, yb) + \
            0.25 * F.huber_loss(predictions, yb)
        totals.append(loss.item())
        loss.backward()
        optimizer.step()
    return model, totals


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_combined_loss_trains_as_the_hand_written_loop_bit_for_bit(regression_csv, store, executor):
    try:
        result = cardloop.run(combined_loss_pipeline(regression_csv), store=store, executor=executor, threads=1)
        model = cardloop.load_output(result.run_id, f"step{STEPS - 1}", "model", store=store)
    finally:
        process.stop_workers()
    expected, totals = hand_written_combined_loop(regression_csv)
    assert_same_weights(model, expected)
    assert [result.outputs[f"combine{i}"]["loss_value"] for i in range(STEPS)] == totals
