"""The results table of a sweep (sweep_results.py): sorting best first, and the best epoch from the per-epoch
records of a loop block (BodyCard arrays as the run records hold them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cardloop.errors import CardloopError
from cardloop.store.iterations import BodyCard
from cardloop.sweep_results import best_epoch, sorted_results

TABLE = pd.DataFrame({"variant": [0, 1, 2], "opt.learning_rate": [0.1, 0.2, 0.3], "status": ["succeeded"] * 3,
                      "evaluate.mse": [0.5, np.nan, 0.25], "epochs.validate.accuracy": [0.8, 0.9, np.nan]})


def epoch_card(path, values, done=None):
    """A body card run once per epoch, with one metric per name in `values`."""
    n = len(next(iter(values.values())))
    status = np.ones(n, dtype=np.uint8) if done is None else np.array(done, dtype=np.uint8)
    return BodyCard(path, "evaluate", status, np.zeros(n, dtype=np.float32), np.arange(n).reshape(n, 1),
                    {name: np.array(v, dtype=np.float64) for name, v in values.items()})


def test_an_error_metric_sorts_lowest_first_and_missing_values_last():
    assert list(sorted_results(TABLE, "evaluate.mse", ["opt.learning_rate"])["variant"]) == [2, 0, 1]


def test_an_accuracy_sorts_highest_first():
    assert list(sorted_results(TABLE, "epochs.validate.accuracy", ["opt.learning_rate"])["variant"]) == [1, 0, 2]


def test_sorting_by_a_column_the_results_lack_lists_the_metrics():
    with pytest.raises(CardloopError, match=r"cannot sort by 'mse': the sweep's results have no such column; "
                                            r"its metrics: evaluate.mse, epochs.validate.accuracy$"):
        sorted_results(TABLE, "mse", ["opt.learning_rate"])


def test_the_best_epoch_is_where_the_metric_early_stopping_watches_was_best_in_its_mode():
    pipeline = {"cards": [{"id": "epochs", "type": "loop", "body": {"cards": [
        {"id": "validate", "type": "evaluate"},
        {"id": "stop", "type": "training_early_stopping", "inputs": {"metric": "validate.accuracy"},
         "config": {"mode": "max"}}]}}]}
    card = epoch_card("epochs.validate", {"mse": [0.9, 0.1, 0.5], "accuracy": [0.2, 0.7, 0.9]})
    assert best_epoch(pipeline, [card]) == {"best_epoch": 2, "best_metric": "epochs.validate.accuracy",
                                            "best_value": 0.9}


def test_without_early_stopping_the_best_epoch_is_the_lowest_of_the_first_per_epoch_metric():
    card = epoch_card("epochs.validate", {"mse": [0.9, 0.1, 0.5]})
    assert best_epoch({"cards": []}, [card])["best_epoch"] == 1


def test_an_epoch_in_which_the_card_was_skipped_is_never_the_best():
    card = epoch_card("epochs.validate", {"mse": [0.9, 0.0, 0.5]}, done=[1, 0, 1])
    assert best_epoch({"cards": []}, [card])["best_epoch"] == 2


def test_a_card_inside_the_batches_loop_gives_no_best_epoch():
    batches = BodyCard("epochs.batches.loss", "training_loss", np.ones(4, dtype=np.uint8), np.zeros(4, np.float32),
                       np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), {"loss_value": np.array([4.0, 3.0, 2.0, 1.0])})
    assert best_epoch({"cards": []}, [batches]) == {}
