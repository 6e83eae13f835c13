"""What the body cards of a run's loop blocks did, read back from a real run's records as arrays."""

import math

import numpy as np
import pytest

import cardloop
from cardloop.errors import PathNotFound
from cardloop.pipeline.paths import parse_path
from cardloop.store.iterations import (
    block_series,
    block_summary,
    body_cards,
    body_positions,
    find_card,
    iteration_header,
    iteration_rows,
    one_iteration,
)
from cardloop.store.records import RunRecords
from tests.blocks import hand_written_losses, nested_pipeline, steps_pipeline

EVERY_SECOND = {"every": 2, "of": "batches"}  # the optimizer steps in batches 2, 4, ... (counted from 1)


@pytest.fixture
def nested(regression_csv, store):
    """A run of 2 epochs x 3 batches whose optimizer step runs in every second batch: its records and run id."""
    result = cardloop.run(nested_pipeline(regression_csv, when=EVERY_SECOND), store=store, threads=1)
    with RunRecords(store / "runs.sqlite") as records:
        yield records, result.run_id


def test_each_body_card_comes_back_with_its_status_seconds_and_iterations_per_execution(nested):
    records, run_id = nested
    cards = {card.path: card for card in body_cards(records, run_id)}
    assert list(cards) == ["epochs.batches.zero", "epochs.batches.fwd", "epochs.batches.loss", "epochs.batches.back",
                           "epochs.batches.step", "epochs.batches", "epochs.check", "epochs.score"]
    step = cards["epochs.batches.step"]
    assert step.indices.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert step.status.tolist() == [0, 1, 0, 0, 1, 0]
    assert (step.seconds[step.status == 0] == 0).all() and (cards["epochs.batches.fwd"].seconds > 0).all()
    assert cards["epochs.score"].indices.tolist() == [[0], [1]]


def test_a_block_summary_counts_each_loops_iterations_the_skipped_executions_and_the_mean_per_epoch(nested):
    records, run_id = nested
    summary = block_summary(body_cards(records, run_id), "epochs")
    assert summary["loops"] == [{"loop": "epochs", "iterations": 2}, {"loop": "epochs.batches", "iterations": 6}]
    by_path = {card["path"]: card for card in summary["cards"]}
    assert (by_path["epochs.batches.step"]["done"], by_path["epochs.batches.step"]["skipped"]) == (2, 4)
    losses = by_path["epochs.batches.loss"]["metrics"]["loss_value"]
    per_epoch = summary["per_iteration"]["means"]["epochs.batches.loss.loss_value"]
    values = [one_iteration(find_card(body_cards(records, run_id), "epochs.batches.loss", run_id),
                            parse_path(f"epochs[{e}].batches[{b}].loss"), run_id)["metrics"]["loss_value"]
              for e in range(2) for b in range(3)]
    assert per_epoch == pytest.approx([np.mean(values[:3]), np.mean(values[3:])])
    assert (losses["count"], losses["first"], losses["last"], losses["min"]) == (6, values[0], values[-1], min(values))


def test_one_iteration_of_a_skipped_card_says_skipped_and_has_no_metrics(nested):
    records, run_id = nested
    step = find_card(body_cards(records, run_id, "epochs.batches.step"), "epochs.batches.step", run_id)
    assert one_iteration(step, parse_path("epochs[1].batches[1].step"), run_id)["status"] == "done"
    skipped = one_iteration(step, parse_path("epochs[1].batches[2].step"), run_id)
    assert skipped["status"] == "skipped" and skipped["metrics"] == {} and skipped["seconds"] == 0


@pytest.mark.parametrize(("path", "said"), [
    ("epochs[1].batches[3].loss", "has no 'epochs[1].batches[3].loss': loop 'epochs.batches' ran 3 iteration(s) in "
                                  "epochs[1] (0 to 2), counted from 0"),
    ("epochs[2].batches[0].loss", "has no 'epochs[2].batches[0].loss': loop 'epochs' ran 2 iteration(s) (0 to 1), "
                                  "counted from 0"),
])
def test_an_iteration_the_run_lacks_says_which_loop_ran_how_many_iterations(nested, path, said):
    records, run_id = nested
    loss = find_card(body_cards(records, run_id), "epochs.batches.loss", run_id)
    with pytest.raises(PathNotFound) as raised:
        one_iteration(loss, parse_path(path), run_id)
    assert str(raised.value) == f"run {run_id} {said}"


def test_a_body_card_the_run_lacks_is_a_sentence_with_the_closest_paths(nested):
    records, run_id = nested
    with pytest.raises(PathNotFound, match="no body card 'epochs.batches.los' in block 'epochs'; did you mean "
                                           "'epochs.batches.loss'"):
        find_card(body_cards(records, run_id), "epochs.batches.los", run_id)
    with pytest.raises(PathNotFound, match="no loop block 'steps' with recorded iterations; its blocks: epochs"):
        find_card(body_cards(records, run_id), "steps.loss", run_id)


def test_a_metric_series_follows_the_order_the_block_ran_its_cards_in(nested):
    records, run_id = nested
    positions = body_positions(records.get_run(run_id).pipeline)
    series = block_series(body_cards(records, run_id), "epochs", "loss_value", positions)
    assert series.paths() == ["epochs[0].batches[0].loss", "epochs[0].batches[1].loss", "epochs[0].batches[2].loss",
                              "epochs[0].score", "epochs[1].batches[0].loss", "epochs[1].batches[1].loss",
                              "epochs[1].batches[2].loss", "epochs[1].score"]
    assert all(math.isfinite(v) for v in series.values)


def test_a_block_served_from_the_store_is_read_from_the_run_that_ran_it(regression_csv, store):
    first = cardloop.run(steps_pipeline(regression_csv), store=store, threads=1)
    again = cardloop.run(steps_pipeline(regression_csv), store=store, threads=1)
    assert "steps" in again.cached
    with RunRecords(store / "runs.sqlite") as records:
        assert records.iteration_cards(again.run_id) == []
        losses = [one_iteration(find_card(body_cards(records, again.run_id), "steps.loss", again.run_id),
                                parse_path(f"steps[{i}].loss"), again.run_id)["metrics"]["loss_value"]
                  for i in range(5)]
        assert records.run_that_made(again.run_id, "steps") == first.run_id
    assert losses == pytest.approx(hand_written_losses(regression_csv, 5), rel=1e-6)


def test_export_rows_give_each_executions_path_iterations_status_seconds_and_metrics(nested):
    records, run_id = nested
    step, loss = (find_card(body_cards(records, run_id), path, run_id)
                  for path in ("epochs.batches.step", "epochs.batches.loss"))
    assert iteration_header(loss) == ["path", "epochs", "batches", "status", "seconds", "loss_value"]
    rows = list(iteration_rows(step))
    assert [row[:4] for row in rows[:2]] == [["epochs[0].batches[0].step", 0, 0, "skipped"],
                                             ["epochs[0].batches[1].step", 0, 1, "done"]]
    assert all(isinstance(row[5], float) for row in iteration_rows(loss))
