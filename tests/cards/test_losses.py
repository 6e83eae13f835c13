"""The loss types of Calculate Loss and the Training Loop (cards/losses.py) against PyTorch's own functions, and the
errors for batches that do not fit a loss."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import cardloop
from cardloop import Pipeline
from cardloop.cards.registry import default_registry
from cardloop.errors import CardError, CardFailed
from cardloop.pipeline.validate import validate_pipeline
from cardloop.values import Batch
from tests.classification import FEATURES, classification_csv, tensors
from tests.oracle import assert_same_weights, build_mlp


def calculate(predictions: torch.Tensor, y: torch.Tensor, **config) -> dict:
    card_type = default_registry().get("training_loss")
    batch = Batch(torch.zeros(len(y), 1), y)
    return card_type.run(config=card_type.config_model(**config), predictions=predictions, batch_data=batch)


def scores(rows: int = 8, columns: int = 3) -> torch.Tensor:
    return torch.randn(rows, columns, generator=torch.Generator().manual_seed(1))


def class_column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1)


INDICES = class_column(0, 2, 1, 1, 0, 2, 2, 0)
PROBABILITIES = torch.softmax(scores() * 2, dim=1)
LABELS = (scores(8, 2) > 0).float()
REAL = scores(8, 2) * 3

#: loss config, predictions, float32 batch targets, and PyTorch's call on (predictions, targets) a loop would make
CASES = {
    "cross_entropy of class indices with label smoothing": (
        {"loss_type": "cross_entropy", "label_smoothing": 0.1}, scores(), INDICES,
        lambda p: F.cross_entropy(p, INDICES.view(-1).long(), label_smoothing=0.1)),
    "cross_entropy of class probabilities": (
        {"loss_type": "cross_entropy"}, scores(), PROBABILITIES, lambda p: F.cross_entropy(p, PROBABILITIES)),
    "bce_with_logits": ({"loss_type": "bce_with_logits"}, scores(8, 2), LABELS,
                        lambda p: F.binary_cross_entropy_with_logits(p, LABELS)),
    "nll of log-probabilities": ({"loss_type": "nll"}, torch.log_softmax(scores(), dim=1), INDICES,
                                 lambda p: F.nll_loss(p, INDICES.view(-1).long())),
    "smooth_l1 with beta": ({"loss_type": "smooth_l1", "beta": 0.5}, scores(8, 2), REAL,
                            lambda p: F.smooth_l1_loss(p, REAL, beta=0.5)),
    "huber with delta": ({"loss_type": "huber", "huber_delta": 2.0}, scores(8, 2), REAL,
                         lambda p: F.huber_loss(p, REAL, delta=2.0)),
    "mse": ({"loss_type": "mse"}, scores(8, 2), REAL, lambda p: F.mse_loss(p, REAL)),
    "mae": ({"loss_type": "mae"}, scores(8, 2), REAL, lambda p: F.l1_loss(p, REAL)),
}


@pytest.mark.parametrize("case", CASES)
def test_each_loss_type_and_its_gradient_equal_pytorchs_own(case):
    config, predictions, targets, oracle = CASES[case]
    mine, theirs = (predictions.clone().requires_grad_() for _ in range(2))
    out = calculate(mine, targets, **config)
    expected = oracle(theirs)
    assert torch.equal(out["loss"], expected) and out["loss_value"] == expected.item()
    out["loss"].backward()
    expected.backward()
    assert torch.equal(mine.grad, theirs.grad)


def test_the_calculate_loss_config_keeps_the_guides_fields_and_adds_torchs_names():
    defaults = default_registry().get("training_loss").config_model().model_dump()
    assert defaults == {"loss_type": "mse", "huber_delta": 1.0, "label_smoothing": 0.0, "beta": 1.0, "scale": 1.0}


def test_cross_entropy_names_a_class_index_past_the_predicted_classes():
    with pytest.raises(CardError, match=r"^loss_type cross_entropy: 3 classes predicted, targets must be class "
                                        r"indices 0\.\.2 \(found 5\.0\)$"):
        calculate(scores(), class_column(0, 1, 5, 2, 0, 1, 2, 0), loss_type="cross_entropy")


@pytest.mark.parametrize(("value", "shown"), [(1.5, "1.5"), (-1.0, "-1.0"), (float("nan"), "nan")])
def test_cross_entropy_refuses_a_class_index_that_is_not_a_whole_number_in_range(value, shown):
    with pytest.raises(CardError, match=rf"targets must be class indices 0\.\.2 \(found {shown}\)"):
        calculate(scores(), class_column(0, 1, value, 2, 0, 1, 2, 0), loss_type="cross_entropy")


def test_cross_entropy_refuses_target_columns_that_are_neither_indices_nor_one_probability_per_class():
    with pytest.raises(CardError, match="3 classes predicted, but the batch has 2 target columns; targets must be "
                                        r"one column of class indices 0\.\.2 or 3 columns of class probabilities"):
        calculate(scores(), LABELS, loss_type="cross_entropy")


def test_cross_entropy_refuses_probabilities_that_do_not_sum_to_one():
    targets = PROBABILITIES.clone()
    targets[3] *= 2
    with pytest.raises(CardError, match="each row must sum to 1, but row 3 of the batch sums to 2.0"):
        calculate(scores(), targets, loss_type="cross_entropy")


def test_cross_entropy_refuses_negative_probabilities():
    targets = torch.tensor([[1.5, -0.5, 0.0]] * 8)
    with pytest.raises(CardError, match=r"which cannot be negative \(found -0.5\)"):
        calculate(scores(), targets, loss_type="cross_entropy")


@pytest.mark.parametrize("loss_type", ["cross_entropy", "nll"])
def test_a_class_loss_refuses_a_single_prediction_column_and_points_to_bce(loss_type):
    with pytest.raises(CardError, match=rf"loss_type {loss_type} takes one score per class, .* shape \(8, 1\); .*"
                                        "use bce_with_logits"):
        calculate(scores(8, 1), INDICES, loss_type=loss_type)


def test_nll_refuses_predictions_that_are_not_log_probabilities():
    with pytest.raises(CardError, match=r"loss_type nll takes log-probabilities .* use cross_entropy for raw scores"):
        calculate(scores(), INDICES, loss_type="nll")


def test_nll_refuses_more_than_one_target_column():
    with pytest.raises(CardError, match="loss_type nll takes one target column of class indices 0..2, but the "
                                        "batch has 3"):
        calculate(torch.log_softmax(scores(), dim=1), PROBABILITIES, loss_type="nll")


def test_bce_with_logits_refuses_targets_outside_zero_to_one():
    with pytest.raises(CardError, match=r"0/1 labels or probabilities in \[0, 1\] \(found 3.0\)"):
        calculate(scores(8, 1), class_column(0, 1, 3, 1, 0, 1, 1, 0), loss_type="bce_with_logits")


@pytest.mark.parametrize("loss_type", ["mse", "smooth_l1", "bce_with_logits"])
def test_a_loss_of_one_prediction_per_target_refuses_another_shape(loss_type):
    with pytest.raises(CardError, match=r"predictions have shape \(8, 3\) but targets have shape \(8, 1\); "
                                        "model_define's output_dim must equal the number of target columns"):
        calculate(scores(), INDICES, loss_type=loss_type)


def test_a_label_smoothing_past_one_is_refused_by_validation():
    p = Pipeline(name="bad")
    p.add("training_loss", "loss", label_smoothing=1.5)
    assert any("config field 'label_smoothing' is 1.5" in problem.message and "less than or equal to 1"
               in problem.message for problem in validate_pipeline(p))


# --- in pipelines: the Training Loop card, and the error named by the card


def classifier_loop(csv, **config) -> Pipeline:
    p = Pipeline(name="classes")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8], output_dim=3, seed=0)
    opt = p.add("training_init_optimizer", "opt", model=model["model"], learning_rate=0.01)
    p.add("training_loop", "loop", train_dataset=data["dataset"], model=model["model"], optimizer=opt["optimizer"],
          batch_size=16, epochs=2, **config)
    return p


def test_the_training_loop_with_cross_entropy_trains_as_the_hand_written_loop(tmp_path, store):
    csv = classification_csv(tmp_path)
    result = cardloop.run(classifier_loop(csv, loss_type="cross_entropy", label_smoothing=0.1), store=store)
    X, y = tensors(pd.read_csv(csv))
    model = build_mlp(4, [8], output_dim=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(2):
        for start in range(0, len(X), 16):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[start:start + 16]), y[start:start + 16].view(-1).long(),
                                   label_smoothing=0.1)
            losses.append(loss.item())
            loss.backward()
            optimizer.step()
    assert_same_weights(result.outputs["loop"]["model"], model)
    assert result.metrics("loss_value") == losses


def test_the_training_loop_names_class_targets_that_do_not_fit(tmp_path, store):
    frame = pd.read_csv(classification_csv(tmp_path))
    frame.loc[20, "target"] = 7
    frame[FEATURES + ["target"]].to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(CardFailed, match=r"card 'loop' \(training_loop\) failed: loss_type cross_entropy: 3 classes "
                                         r"predicted, targets must be class indices 0\.\.2 \(found 7\.0\)"):
        cardloop.run(classifier_loop(tmp_path / "bad.csv", loss_type="cross_entropy"), store=store)
