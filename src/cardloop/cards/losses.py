"""The loss functions of Calculate Loss (`training_loss`) and the Training Loop card, chosen by `loss_type`.

Batches carry float32 targets y of shape (N, T): T target columns. Regression losses (mse, mae, huber, smooth_l1)
and bce_with_logits take predictions of the same shape. cross_entropy and nll take one score per class, (N, C),
against one target column of class indices (whole numbers 0..C-1, made int64 here), and cross_entropy also
against C columns of class probabilities. A batch that does not fit its loss is the user's mistake, named:
PyTorch's losses would broadcast it silently, or fail with an error about tensors.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Literal, Protocol

from pydantic import Field

from cardloop.errors import CardError

LossType = Literal["mse", "mae", "huber", "smooth_l1", "cross_entropy", "bce_with_logits", "nll"]
REGRESSION_LOSSES = ("mse", "mae", "huber", "smooth_l1")
#: How far from 1 a row of probability targets may sum (float32 rounding of a CSV's values)
PROBABILITY_SUM_TOLERANCE = 1e-4

LABEL_SMOOTHING = Field(default=0.0, ge=0, le=1,
                        description="cross_entropy only: PyTorch's label_smoothing, 0 (none) to 1.")
SMOOTH_L1_BETA = Field(default=1.0, ge=0, description="smooth_l1 only: PyTorch's beta (default 1.0).")


class LossSettings(Protocol):
    """The config fields a loss is chosen by (LossConfig, TrainingLoopConfig)."""

    loss_type: str
    huber_delta: float
    label_smoothing: float
    beta: float


def loss_function(settings: LossSettings) -> Callable[[Any, Any], Any]:
    """The loss `settings.loss_type` names, as a function of (predictions, a batch's targets y) that first checks
    they fit it; the loss is computed with the same PyTorch call a hand-written loop makes."""
    import torch.nn.functional as F

    loss_type = settings.loss_type
    if loss_type in REGRESSION_LOSSES:
        return functools.partial(_regression, {
            "mse": F.mse_loss, "mae": F.l1_loss,
            "huber": functools.partial(F.huber_loss, delta=settings.huber_delta),
            "smooth_l1": functools.partial(F.smooth_l1_loss, beta=settings.beta)}[loss_type])
    return {"bce_with_logits": _bce_with_logits, "nll": _nll,
            "cross_entropy": functools.partial(_cross_entropy, settings.label_smoothing)}[loss_type]


def check_same_shape(predictions: Any, y: Any) -> None:
    """Predictions and targets must have one shape: PyTorch's losses would broadcast them silently."""
    if predictions.shape != y.shape:
        raise CardError(f"predictions have shape {tuple(predictions.shape)} but targets have shape "
                        f"{tuple(y.shape)}; model_define's output_dim must equal the number of target columns")


def class_indices(y: Any, classes: int, subject: str = "") -> Any:
    """One column of class indices (float32, shape (N, 1) or (N,)) as int64 of shape (N,), after checking that
    every value is a whole number in 0..classes-1. `subject` begins the message (what predicted the classes)."""
    column = y.reshape(-1)
    bad = (column != column.floor()) | (column < 0) | (column > classes - 1)  # NaN != NaN: refused too
    if bool(bad.any()):
        found = float(column[bad][0])
        raise CardError(f"{subject}{classes} classes predicted, targets must be class indices 0..{classes - 1} "
                        f"(found {found!r})")
    return column.long()


def _regression(loss: Callable, predictions: Any, y: Any) -> Any:
    check_same_shape(predictions, y)
    return loss(predictions, y)


def _bce_with_logits(predictions: Any, y: Any) -> Any:
    import torch.nn.functional as F

    check_same_shape(predictions, y)
    outside = (y < 0) | (y > 1) | y.isnan()
    if bool(outside.any()):
        raise CardError(f"loss_type bce_with_logits takes targets that are 0/1 labels or probabilities in [0, 1] "
                        f"(found {float(y[outside][0])!r}); predictions are one logit per target column")
    return F.binary_cross_entropy_with_logits(predictions, y)


def _class_scores(loss_type: str, predictions: Any, y: Any) -> int:
    """The number of classes C of predictions (N, C), checked against the batch: C >= 2 and N rows."""
    if predictions.dim() != 2 or predictions.shape[1] < 2:
        raise CardError(f"loss_type {loss_type} takes one score per class, predictions of shape (rows, classes) "
                        f"with at least 2 classes, but they have shape {tuple(predictions.shape)}; set "
                        "model_define's output_dim to the number of classes (for one logit per row, use "
                        "bce_with_logits)")
    if predictions.shape[0] != y.shape[0]:
        raise CardError(f"predictions have {predictions.shape[0]} rows but targets have {y.shape[0]}")
    return predictions.shape[1]


def _cross_entropy(label_smoothing: float, predictions: Any, y: Any) -> Any:
    import torch.nn.functional as F

    classes = _class_scores("cross_entropy", predictions, y)
    columns = y.shape[1] if y.dim() == 2 else 1
    if columns == 1:
        target = class_indices(y, classes, "loss_type cross_entropy: ")
    elif columns == classes:
        target = _probabilities(y)
    else:
        raise CardError(f"loss_type cross_entropy: {classes} classes predicted, but the batch has {columns} target "
                        f"columns; targets must be one column of class indices 0..{classes - 1} or {classes} "
                        "columns of class probabilities")
    return F.cross_entropy(predictions, target, label_smoothing=label_smoothing)


def _probabilities(y: Any) -> Any:
    """C columns of class probabilities: non-negative, each row summing to 1."""
    negative = y < 0
    if bool(negative.any()):
        raise CardError(f"loss_type cross_entropy: {y.shape[1]} target columns are taken as class probabilities, "
                        f"which cannot be negative (found {float(y[negative][0])!r})")
    error = (y.sum(dim=1) - 1).abs()
    if not bool((error <= PROBABILITY_SUM_TOLERANCE).all()):  # NaN fails too
        row = int(error.nan_to_num(float("inf")).argmax())
        raise CardError(f"loss_type cross_entropy: {y.shape[1]} target columns are taken as class probabilities, "
                        f"so each row must sum to 1, but row {row} of the batch sums to {float(y[row].sum())!r}")
    return y


def _nll(predictions: Any, y: Any) -> Any:
    import torch.nn.functional as F

    classes = _class_scores("nll", predictions, y)
    if y.dim() == 2 and y.shape[1] != 1:
        raise CardError(f"loss_type nll takes one target column of class indices 0..{classes - 1}, but the batch "
                        f"has {y.shape[1]}")
    target = class_indices(y, classes, "loss_type nll: ")
    if bool((predictions > 0).any()):
        raise CardError(f"loss_type nll takes log-probabilities (<= 0, a model ending in log_softmax), but the "
                        f"predictions hold {float(predictions.max())!r}; use cross_entropy for raw scores (logits)")
    return F.nll_loss(predictions, target)
