"""The evaluation card: a model's error on a table, without touching the model.

Features are every non-target column in frame order, as float32, the same way batches are made for
training; metrics are computed in float64 from the float32 predictions so they do not depend on the
batch size.

The task is regression (mse, mae, r2) or classification (accuracy, macro F1, log loss, confusion matrix). Config
`task: auto` takes a model that outputs more than one column for one target column as a classifier (one score per
class, the target a class index), and anything else as regression; a binary classifier with one output column (a
logit, class 1 when it is above 0) is evaluated as one with `task: classification`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cardloop.cards.bounds import MAX_INT64
from cardloop.cards.data import check_numeric, split_columns
from cardloop.cards.losses import class_indices
from cardloop.models import model_device
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import DATAFRAME, INFO, MODEL, SCALAR


class EvaluateConfig(CardConfig):
    batch_size: int = Field(default=1024, ge=1, le=MAX_INT64, description="rows per forward pass")
    target_columns: list[str] | None = Field(
        default=None, min_length=1, description="target columns; default: those recorded on the dataset")
    task: Literal["auto", "regression", "classification"] = Field(
        default="auto", description="auto: classification when the model outputs more than one column (a score "
                                    "per class) for one target column of class indices, else regression; "
                                    "classification with one output column: a binary classifier's logit")


def predict(model: Any, X: Any, batch_size: int) -> Any:
    """Predictions for all rows of `X`, in eval mode and without gradients; every module's mode restored."""
    import torch

    modes = [(module, module.training) for module in model.modules()]
    device = model_device(model)
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(X[start:start + batch_size].to(device)).cpu()
                     for start in range(0, len(X), batch_size)]
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        raise CardError(f"the model could not run on the dataset's {X.shape[1]} feature column(s): {exc}") from exc
    finally:
        for module, training in modes:
            module.training = training
    return torch.cat(parts)


def regression_metrics(predictions: Any, targets: Any) -> dict[str, float]:
    """MSE, MAE over all values and R² averaged over target columns, in float64."""
    p, y = predictions.double(), targets.double()
    error = p - y
    ss_res = (error ** 2).sum(dim=0)
    ss_tot = ((y - y.mean(dim=0)) ** 2).sum(dim=0)
    constant = ss_tot == 0
    r2 = 1 - ss_res / ss_tot.where(~constant, 1.0)
    r2 = r2.where(~constant, (ss_res == 0).double())
    return {"mse": float((error ** 2).mean()), "mae": float(error.abs().mean()), "r2": float(r2.mean())}


def classification_metrics(scores: Any, targets: Any, subject: str) -> dict[str, Any]:
    """Accuracy, macro F1, log loss and the confusion matrix of a classifier's outputs `scores` (N, C) against one
    column of class indices, in float64. C >= 2: scores per class (logits; log-probabilities give the same
    softmax), the class predicted is the first of the highest; C == 1: a binary classifier's logit, class 1 when
    it is above 0. Log loss is the cross-entropy of the softmax (or sigmoid) probabilities. Macro F1 averages the
    F1 of the classes found among the targets or the predictions (scikit-learn's f1_score(average="macro")).
    The confusion matrix has a row per true class and a column per predicted class. `subject` begins an error."""
    import torch
    import torch.nn.functional as F

    scores = scores.double()
    classes = max(scores.shape[1], 2)
    y = class_indices(targets, classes, subject)
    if scores.shape[1] == 1:
        predicted = (scores[:, 0] > 0).long()
        log_loss = F.binary_cross_entropy_with_logits(scores[:, 0], y.double())
    else:
        predicted = scores.argmax(dim=1)
        log_loss = F.cross_entropy(scores, y)
    confusion = torch.bincount(y * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    hits = confusion.diag().double()
    found = confusion.sum(dim=0) + confusion.sum(dim=1)  # 2 tp + fp + fn: the denominator of each class's F1
    present = found > 0
    f1 = 2 * hits[present] / found[present].double()
    return {"accuracy": float((predicted == y).double().mean()), "macro_f1": float(f1.mean()),
            "log_loss": float(log_loss), "classes": classes, "confusion_matrix": confusion.tolist()}


@card(
    "evaluate",
    title="Evaluate",
    category="evaluation",
    inputs=(Port("model", MODEL, "the model to evaluate (left unchanged)"),
            Port("dataset", DATAFRAME, "the table to evaluate on")),
    outputs=(Port("metrics", INFO, "the task and the number of rows; regression: mse, mae, r2; classification: "
                                   "accuracy, macro_f1, log_loss, classes, confusion_matrix"),
             Port("mse", SCALAR, "mean squared error (regression; none for classification)", metric=True),
             Port("accuracy", SCALAR, "share of rows classified right (classification; none for regression)",
                  metric=True)),
    config=EvaluateConfig,
)
def evaluate(config: EvaluateConfig, model: Any, dataset: Any) -> dict[str, Any]:
    """Measure a model's regression error or classification quality on a table, in eval mode, without changing
    the model."""
    import torch

    if len(dataset) == 0:
        raise CardError("the dataset has no rows to evaluate on")
    features, targets = split_columns(dataset, config.target_columns)
    check_numeric(dataset, features + targets, "the dataset")
    X = torch.tensor(dataset[features].to_numpy(dtype="float32"))
    y = torch.tensor(dataset[targets].to_numpy(dtype="float32"))
    predictions = predict(model, X, config.batch_size)
    if predictions.dim() == 1 and y.shape[1] == 1:
        predictions = predictions.unsqueeze(1)
    columns = predictions.shape[1] if predictions.dim() == 2 else 0
    task = config.task
    if task == "auto":
        task = "classification" if columns > 1 and y.shape[1] == 1 else "regression"
    if task == "classification":
        if columns == 0 or y.shape[1] != 1:
            raise CardError(f"task classification takes one score per class (the model predicts shape "
                            f"{tuple(predictions.shape)}) and one target column of class indices (the targets are "
                            f"{', '.join(targets)})")
        why = "which makes it a classifier (task auto)" if config.task == "auto" else "as a classifier"
        subject = f"the model outputs {columns} column(s) for the target column {targets[0]}, {why}: "
        metrics = {"task": task, **classification_metrics(predictions, y, subject), "rows": len(dataset)}
        return {"metrics": metrics, "mse": None, "accuracy": metrics["accuracy"]}
    if tuple(predictions.shape) != tuple(y.shape):
        raise CardError(f"the model predicts shape {tuple(predictions.shape)}, but the targets "
                        f"({', '.join(targets)}) have shape {tuple(y.shape)}")
    metrics = {"task": task, **regression_metrics(predictions, y), "rows": len(dataset)}
    return {"metrics": metrics, "mse": metrics["mse"], "accuracy": None}
