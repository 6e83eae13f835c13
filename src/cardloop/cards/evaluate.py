"""The evaluation card: a model's error on a table, without touching the model.

Features are every non-target column in frame order, as float32, the same way batches are made for
training; metrics are computed in float64 from the float32 predictions so they do not depend on the
batch size.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cardloop.cards.bounds import MAX_INT64
from cardloop.cards.data import check_numeric, split_columns
from cardloop.models import model_device
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import DATAFRAME, INFO, MODEL, SCALAR


class EvaluateConfig(CardConfig):
    batch_size: int = Field(default=1024, ge=1, le=MAX_INT64, description="rows per forward pass")
    target_columns: list[str] | None = Field(
        default=None, min_length=1, description="target columns; default: those recorded on the dataset")


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


@card(
    "evaluate",
    title="Evaluate",
    category="evaluation",
    inputs=(Port("model", MODEL, "the model to evaluate (left unchanged)"),
            Port("dataset", DATAFRAME, "the table to evaluate on")),
    outputs=(Port("metrics", INFO, "mse, mae, r2 and the number of rows"),
             Port("mse", SCALAR, "mean squared error", metric=True)),
    config=EvaluateConfig,
)
def evaluate(config: EvaluateConfig, model: Any, dataset: Any) -> dict[str, Any]:
    """Measure a model's regression error on a table, in eval mode, without changing the model."""
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
    if tuple(predictions.shape) != tuple(y.shape):
        raise CardError(f"the model predicts shape {tuple(predictions.shape)}, but the targets "
                        f"({', '.join(targets)}) have shape {tuple(y.shape)}")
    metrics = {**regression_metrics(predictions, y), "rows": len(dataset)}
    return {"metrics": metrics, "mse": metrics["mse"]}
