"""regularization: the guide's "Add L1 Regularization" built in, equal to the same formula written by hand and to
the custom card of examples/cards/l1_regularization.py; L2 and parameters chosen by name pattern."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import cardloop
from cardloop import Pipeline
from cardloop.cards.registry import default_registry, load_card_file
from cardloop.engine import process
from cardloop.errors import CardError
from tests.oracle import assert_same_weights, build_mlp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def regularize(loss, model, **config) -> dict:
    card_type = default_registry().get("regularization")
    return card_type.run(config=card_type.config_model(**config), loss=loss, model=model)


def loss_of(model: torch.nn.Module) -> torch.Tensor:
    X, y = torch.linspace(-1, 1, 32).reshape(8, 4), torch.linspace(0, 1, 8).reshape(8, 1)
    return F.mse_loss(model(X), y)


def assert_same_loss_and_gradients(card_out: dict, mine: torch.nn.Module, expected: torch.Tensor,
                                   theirs: torch.nn.Module) -> None:
    assert torch.equal(card_out["loss"], expected) and card_out["loss_value"] == expected.item()
    card_out["loss"].backward()
    expected.backward()
    for (name, a), (_, b) in zip(mine.named_parameters(), theirs.named_parameters()):
        assert torch.equal(a.grad, b.grad), f"gradient of {name} differs"


def test_l1_equals_the_guides_formula_written_by_hand():
    mine, theirs = build_mlp(4, [8]), build_mlp(4, [8])
    out = regularize(loss_of(mine), mine, norm="l1", weight=0.01)
    expected = loss_of(theirs) + 0.01 * sum(p.abs().sum() for p in theirs.parameters())
    assert_same_loss_and_gradients(out, mine, expected, theirs)


def test_l1_equals_the_custom_card_it_replaces():
    load_card_file(EXAMPLES / "cards" / "l1_regularization.py")
    card_type = default_registry().get("l1_regularization")
    model = build_mlp(4, [8])
    loss = loss_of(model)
    old = card_type.run(config=card_type.config_model(weight=0.003), loss=loss, model=model)["loss"]
    assert torch.equal(regularize(loss, model, weight=0.003)["loss"], old)


def test_l2_is_the_sum_of_squares_written_by_hand():
    mine, theirs = build_mlp(4, [8]), build_mlp(4, [8])
    out = regularize(loss_of(mine), mine, norm="l2", weight=0.02)
    expected = loss_of(theirs) + 0.02 * sum((p ** 2).sum() for p in theirs.parameters())
    assert_same_loss_and_gradients(out, mine, expected, theirs)


def test_name_patterns_choose_the_parameters_in_the_models_order():
    mine, theirs = build_mlp(4, [8]), build_mlp(4, [8])
    out = regularize(loss_of(mine), mine, weight=0.1, parameters=["*.weight"])
    expected = loss_of(theirs) + 0.1 * sum(p.abs().sum() for name, p in theirs.named_parameters()
                                           if name.endswith(".weight"))
    assert_same_loss_and_gradients(out, mine, expected, theirs)


def test_a_pattern_that_matches_no_parameter_is_named_with_the_models_parameter_names():
    model = build_mlp(4, [8])
    with pytest.raises(CardError, match=r"config field 'parameters': pattern 'head\.\*' matches no parameter of the "
                                        r"model; its parameters are 0\.weight, 0\.bias, 2\.weight, 2\.bias"):
        regularize(loss_of(model), model, parameters=["0.*", "head.*"])


def test_the_defaults_are_l1_on_every_parameter():
    assert default_registry().get("regularization").config_model().model_dump() == {
        "norm": "l1", "weight": 1e-4, "parameters": None}


# --- in a training pipeline, on both executors

STEPS = 3


def regularized_pipeline(csv) -> Pipeline:
    """The guide's "Custom loss with regularization": Calculate Loss (MSE), Add L1 Regularization on the first
    layer's weights, Backward Pass, Optimizer Step, for STEPS batches."""
    p = Pipeline(name="l1")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)["model"]
    optimizer = p.add("training_init_optimizer", "opt", model=model, learning_rate=0.01)["optimizer"]
    for i in range(STEPS):
        batch = p.add("training_prepare_batch", f"batch{i}", train_dataset=data["dataset"], batch_index=i,
                      batch_size=16)["batch_data"]
        optimizer = p.add("training_zero_grad", f"zero{i}", optimizer=optimizer)["optimizer"]
        fwd = p.add("training_forward", f"fwd{i}", model=model, batch_data=batch)
        loss = p.add("training_loss", f"loss{i}", predictions=fwd["predictions"], batch_data=batch)
        l1 = p.add("regularization", f"l1_{i}", loss=loss["loss"], model=fwd["model"], weight=0.01,
                   parameters=["0.weight"])
        back = p.add("training_backward", f"back{i}", loss=l1["loss"], model=fwd["model"])
        step = p.add("training_optimizer_step", f"step{i}", optimizer=optimizer, model=back["model"])
        model, optimizer = step["model"], step["optimizer"]
    return p


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_regularized_loss_trains_as_the_hand_written_loop_bit_for_bit(regression_csv, store, executor):
    try:
        result = cardloop.run(regularized_pipeline(regression_csv), store=store, executor=executor, threads=1)
        trained = cardloop.load_output(result.run_id, f"step{STEPS - 1}", "model", store=store)
    finally:
        process.stop_workers()
    frame = pd.read_csv(regression_csv)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(4, [8])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    values = []
    for _, (xb, yb) in zip(range(STEPS), DataLoader(TensorDataset(X, y), batch_size=16)):
        optimizer.zero_grad()
        loss = F.mse_loss(model(xb), yb) + 0.01 * sum(p.abs().sum() for p in [model[0].weight])
        values.append(loss.item())
        loss.backward()
        optimizer.step()
    assert_same_weights(trained, model)
    assert [result.outputs[f"l1_{i}"]["loss_value"] for i in range(STEPS)] == values
