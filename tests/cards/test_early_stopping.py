"""training_early_stopping against Lightning's EarlyStopping rule, written out here in plain Python, run after run
with the state carried as a loop block carries it."""

import math

import numpy as np
import pytest
import torch

from cardloop.cards.early_stopping import EarlyStoppingConfig, early_stopping
from cardloop.errors import CardError

NAN, INF = float("nan"), float("inf")


def lightning(metrics, patience=3, min_delta=0.0, mode="min", check_finite=True):
    """Lightning's EarlyStopping._evaluate_stopping_criteria, step by step: (stop, best, wait, improved) after each
    metric."""
    sign = -1 if mode == "min" else 1  # Lightning keeps min_delta negative in mode min
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    best, wait, seen = (INF if mode == "min" else -INF), 0, []
    for current in metrics:
        stop = improved = False
        if check_finite and not math.isfinite(current):
            stop = True
        elif better(current - sign * min_delta, best):
            best, wait, improved = current, 0, True
        else:
            wait += 1
            stop = wait >= patience
        seen.append((stop, best, wait, improved))
    return seen


def card_run(metrics, **config):
    """The card run once per metric, each run given the state the run before it made."""
    state, seen = None, []
    for metric in metrics:
        outputs = early_stopping.run(config=EarlyStoppingConfig(**config), metric=metric, state=state)
        state = outputs["state"]
        seen.append(outputs)
    return seen


SEQUENCES = [
    ([1.0, 0.9, 0.95, 0.96, 0.97, 0.5], {}),
    ([1.0, 0.9, 0.95, 0.96, 0.97, 0.5], {"patience": 4}),
    ([1.0, 0.95, 0.93, 0.925, 0.92, 0.8], {"min_delta": 0.04}),
    ([1.0, 0.95, 0.93, 0.925, 0.92, 0.8], {"min_delta": 0.04, "patience": 1}),
    ([0.1, 0.2, 0.15, 0.25, 0.25, 0.24, 0.2], {"mode": "max"}),
    ([0.1, 0.2, 0.15, 0.25, 0.25, 0.24, 0.2], {"mode": "max", "min_delta": 0.06}),
    ([1.0, 0.9, NAN, 0.8], {}),
    ([1.0, 0.9, NAN, 0.8, INF, 0.7], {"check_finite": False}),
    ([INF, INF, 2.0], {"patience": 5}),
    ([0.3, 0.1 + 0.2, 0.3], {"min_delta": 0.0, "patience": 2}),
]


@pytest.mark.parametrize("metrics, config", SEQUENCES)
def test_stop_best_wait_and_improved_follow_lightning_s_rule(metrics, config):
    seen = card_run(metrics, **config)
    expected = lightning(metrics, **config)
    assert [(o["stop"], o["best_value"], o["state"]["wait"], o["improved"]) for o in seen] == expected


@pytest.mark.parametrize("metrics, config", SEQUENCES)
def test_best_step_is_the_step_of_the_last_improvement_and_steps_count_from_zero(metrics, config):
    seen = card_run(metrics, **config)
    improvements = [step for step, (*_, improved) in enumerate(lightning(metrics, **config)) if improved]
    for step, outputs in enumerate(seen):
        best_step = max((s for s in improvements if s <= step), default=-1)
        assert (outputs["best_step"], outputs["state"]["best_step"], outputs["state"]["step"]) == \
            (best_step, best_step, step)


def test_a_nan_metric_stops_at_once_and_leaves_best_and_wait_as_they_were():
    seen = card_run([1.0, NAN])
    assert seen[1]["stop"] is True and seen[1]["improved"] is False
    assert seen[1]["state"] == {"best": 1.0, "best_step": 0, "wait": 0, "step": 1}


def test_before_any_improvement_the_best_is_the_start_value_and_its_step_minus_one():
    outputs = card_run([NAN], check_finite=False, mode="max")[0]
    assert (outputs["best_value"], outputs["best_step"], outputs["stop"]) == (-INF, -1, False)


def test_the_metric_may_be_a_torch_or_numpy_scalar():
    for metric in (torch.tensor(0.5), np.float32(0.5), torch.tensor([0.5])):
        assert card_run([metric])[0]["best_value"] == 0.5


@pytest.mark.parametrize("metric", ["0.5", [0.5, 0.4], torch.tensor([0.5, 0.4]), None])
def test_a_metric_that_is_no_number_is_named(metric):
    with pytest.raises(CardError, match=r"input 'metric' is a .*; it must be a number"):
        card_run([metric])


def test_a_state_that_is_not_this_card_s_is_named():
    with pytest.raises(CardError, match=r"input 'state' must be the state output of training_early_stopping"):
        early_stopping.run(config=EarlyStoppingConfig(), metric=1.0, state={"best": 1.0})


def test_its_state_is_json_as_the_info_codec_stores_it():
    from cardloop.store.codecs import CodecContext, codec_for_kind

    codec = codec_for_kind("info")
    state = card_run([1.0, 2.0])[-1]["state"]
    assert codec.decode(codec.encode(state, CodecContext()), CodecContext()) == state


def test_best_value_is_recorded_as_a_metric():
    assert early_stopping.output("best_value").metric
