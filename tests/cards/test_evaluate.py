"""The evaluate card: metrics against a hand computation, and a model left exactly as it was."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cardloop.cards.registry import default_registry
from cardloop.errors import CardError
from tests.devices import needs_cuda


def evaluate(model, dataset, **config) -> dict:
    card_type = default_registry().get("evaluate")
    return card_type.run(config=card_type.config_model(**config), model=model, dataset=dataset)


def frame_with_targets(data: dict, targets: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(data)
    frame.attrs["target_columns"] = targets
    return frame


@pytest.fixture
def dataset() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 2))
    return frame_with_targets({"x1": x[:, 0], "target": 3 * x[:, 0] - x[:, 1] + rng.normal(size=25),
                               "x2": x[:, 1]}, ["target"])


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(2, 1)


def test_evaluate_metrics_equal_a_hand_computation(model, dataset):
    X = torch.tensor(dataset[["x1", "x2"]].to_numpy(dtype=np.float32))
    with torch.no_grad():
        predictions = model(X).double().numpy().ravel()
    y = dataset["target"].to_numpy(dtype=np.float32).astype(np.float64)
    out = evaluate(model, dataset)
    mse = np.mean((predictions - y) ** 2)
    assert out["metrics"]["mse"] == pytest.approx(mse, rel=1e-12)
    assert out["metrics"]["mae"] == pytest.approx(np.mean(np.abs(predictions - y)), rel=1e-12)
    assert out["metrics"]["r2"] == pytest.approx(1 - np.sum((predictions - y) ** 2) / np.sum((y - y.mean()) ** 2))
    assert out["metrics"]["rows"] == 25
    assert out["mse"] == out["metrics"]["mse"]
    assert json.loads(json.dumps(out["metrics"])) == out["metrics"]


def test_evaluate_gives_the_same_metrics_for_any_batch_size(model, dataset):
    assert evaluate(model, dataset, batch_size=4)["metrics"] == pytest.approx(evaluate(model, dataset)["metrics"])


def test_evaluate_averages_r2_over_several_targets():
    frame = frame_with_targets({"x": [1.0, 2.0, 3.0], "y1": [1.0, 2.0, 3.0], "y2": [2.0, 2.0, 2.0]}, ["y1", "y2"])
    identity = torch.nn.Linear(1, 2)
    with torch.no_grad():
        identity.weight.copy_(torch.tensor([[1.0], [0.0]]))
        identity.bias.copy_(torch.tensor([0.0, 2.0]))
    metrics = evaluate(identity, frame)["metrics"]
    assert metrics == {"mse": 0.0, "mae": 0.0, "r2": 1.0, "rows": 3}


def test_evaluate_leaves_weights_gradients_and_training_flags_unchanged(dataset):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))
    model[1].eval()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    out = evaluate(model, dataset)
    assert set(out) == {"metrics", "mse"}
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_runs_the_model_in_eval_mode(dataset):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Dropout(0.9), torch.nn.Linear(8, 1))
    first, second = evaluate(model, dataset), evaluate(model, dataset)
    assert first == second
    assert model.training


def test_evaluate_card_is_declared_as_not_changing_state():
    card_type = default_registry().get("evaluate")
    assert card_type.category == "evaluation" and not card_type.mutates_state
    assert card_type.output("mse").kind == "scalar" and card_type.output("mse").metric


def test_evaluate_uses_the_target_columns_override(model, dataset):
    expected = evaluate(model, dataset)["metrics"]
    unlabelled = dataset.copy()
    unlabelled.attrs = {}
    assert evaluate(model, unlabelled, target_columns=["target"])["metrics"] == expected


def test_evaluate_needs_recorded_or_configured_target_columns(model, dataset):
    dataset.attrs = {}
    with pytest.raises(CardError, match="records no target columns .* 'target_columns' is not set"):
        evaluate(model, dataset)


def test_evaluate_names_a_missing_target_column(model, dataset):
    with pytest.raises(CardError,
                       match=r"'target_columns' names target column 'y', .* available columns: x1, target, x2"):
        evaluate(model, dataset, target_columns=["y"])


def test_evaluate_reports_a_model_that_does_not_fit_the_features(dataset):
    with pytest.raises(CardError, match=r"could not run on the dataset's 2 feature column\(s\)"):
        evaluate(torch.nn.Linear(3, 1), dataset)


def test_evaluate_reports_predictions_of_the_wrong_shape(dataset):
    with pytest.raises(CardError, match=r"predicts shape \(25, 2\), but the targets \(target\) have shape \(25, 1\)"):
        evaluate(torch.nn.Linear(2, 2), dataset)


def test_evaluate_names_a_non_numeric_column(model, dataset):
    dataset["x2"] = dataset["x2"].astype(str)
    with pytest.raises(CardError, match="column 'x2' of the dataset has dtype"):
        evaluate(model, dataset)


@needs_cuda
def test_evaluate_runs_on_the_model_device(model, dataset):
    expected = evaluate(model, dataset)["metrics"]
    cuda_model = model.to("cuda")
    assert evaluate(cuda_model, dataset)["metrics"] == pytest.approx(expected, rel=1e-5)
    assert next(cuda_model.parameters()).is_cuda
