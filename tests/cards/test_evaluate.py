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
    assert metrics == {"task": "regression", "mse": 0.0, "mae": 0.0, "r2": 1.0, "rows": 3}


def test_evaluate_leaves_weights_gradients_and_training_flags_unchanged(dataset):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))
    model[1].eval()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    out = evaluate(model, dataset)
    assert set(out) == {"metrics", "mse", "accuracy"}
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
    assert card_type.output("accuracy").kind == "scalar" and card_type.output("accuracy").metric


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
        evaluate(torch.nn.Linear(2, 2), dataset, task="regression")


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


# --- classification


def hand_classification(scores: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, macro F1 (over the classes among targets or predictions, as scikit-learn's), log loss of the
    softmax and the confusion matrix, in numpy float64."""
    classes = scores.shape[1]
    predicted = scores.argmax(axis=1)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    confusion = np.zeros((classes, classes), dtype=int)
    for true, guess in zip(y, predicted):
        confusion[true, guess] += 1
    f1 = []
    for c in sorted(set(y) | set(predicted)):
        tp = np.sum((predicted == c) & (y == c))
        precision = tp / max(np.sum(predicted == c), 1)
        recall = tp / max(np.sum(y == c), 1)
        f1.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return {"accuracy": np.mean(predicted == y), "macro_f1": np.mean(f1),
            "log_loss": -np.mean(log_probabilities[np.arange(len(y)), y]), "confusion_matrix": confusion.tolist()}


@pytest.fixture
def classes() -> pd.DataFrame:
    from tests.classification import classification_frame

    return classification_frame(rows=50, classes=3)


def a_classifier(outputs: int = 3) -> torch.nn.Module:
    torch.manual_seed(2)
    return torch.nn.Linear(4, outputs)


def test_a_model_with_a_score_per_class_is_evaluated_as_a_classifier_against_numpy(classes):
    model = a_classifier()
    X = torch.tensor(classes[["a", "b", "c", "d"]].to_numpy(dtype=np.float32))
    with torch.no_grad():
        scores = model(X).double().numpy()
    y = classes["target"].to_numpy()
    out = evaluate(model, classes)
    expected = hand_classification(scores, y)
    metrics = out["metrics"]
    assert metrics["task"] == "classification" and metrics["classes"] == 3 and metrics["rows"] == 50
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    for name in ("accuracy", "macro_f1", "log_loss"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-12), name
    assert out["accuracy"] == metrics["accuracy"] and out["mse"] is None
    assert json.loads(json.dumps(metrics)) == metrics


def test_macro_f1_leaves_out_a_class_found_neither_among_targets_nor_predictions():
    from cardloop.cards.evaluate import classification_metrics

    scores = torch.tensor([[2.0, 0.0, -9.0], [0.0, 2.0, -9.0], [2.0, 0.0, -9.0], [0.0, 2.0, -9.0]])
    targets = torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    metrics = classification_metrics(scores, targets, "")
    assert metrics["confusion_matrix"] == [[1, 0, 0], [1, 2, 0], [0, 0, 0]]
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2, rel=1e-15)  # class 2 is left out, not 0


def test_one_logit_is_a_binary_classifier_when_the_task_says_classification():
    frame = frame_with_targets({"x": [-2.0, -1.0, 0.5, 1.0, 3.0], "label": [0, 1, 0, 1, 1]}, ["label"])
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(-0.75)
    logits = frame["x"].to_numpy() - 0.75
    y = frame["label"].to_numpy()
    out = evaluate(model, frame, task="classification")
    metrics = out["metrics"]
    assert metrics["confusion_matrix"] == [[2, 0], [1, 2]] and metrics["classes"] == 2
    assert metrics["accuracy"] == 4 / 5
    probability = 1 / (1 + np.exp(-logits))
    log_loss = -np.mean(y * np.log(probability) + (1 - y) * np.log(1 - probability))
    assert metrics["log_loss"] == pytest.approx(log_loss, rel=1e-12)


def test_one_output_column_is_regression_under_auto_even_with_zero_one_targets():
    frame = frame_with_targets({"x": [-2.0, -1.0, 0.5, 1.0], "label": [0, 1, 0, 1]}, ["label"])
    out = evaluate(torch.nn.Linear(1, 1), frame)
    assert out["metrics"]["task"] == "regression" and out["accuracy"] is None and out["mse"] is not None


def test_a_classifier_whose_targets_are_not_class_indices_is_named_with_both_readings(dataset):
    with pytest.raises(CardError, match=r"the model outputs 2 column\(s\) for the target column target, which makes "
                                        r"it a classifier \(task auto\): 2 classes predicted, targets must be class "
                                        r"indices 0\.\.1 \(found -?\d"):
        evaluate(torch.nn.Linear(2, 2), dataset)


def test_classification_of_several_target_columns_is_refused():
    frame = frame_with_targets({"x": [1.0, 2.0], "y1": [0, 1], "y2": [1, 0]}, ["y1", "y2"])
    with pytest.raises(CardError, match=r"task classification takes one score per class .* one target column of "
                                        "class indices \\(the targets are y1, y2\\)"):
        evaluate(torch.nn.Linear(1, 2), frame, task="classification")
