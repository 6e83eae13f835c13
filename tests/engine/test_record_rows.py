"""Rendering a recorder's messages into card-execution and metric rows."""

import numpy as np

import pytest
import torch

from cardloop.engine.record_rows import (
    FIXED,
    RAW,
    SUMMARY,
    RowPlan,
    RowRenderer,
    metric_series,
    row_plan,
    summarized,
    versions_json,
)

LOSS_PORTS = [("loss", "loss", False), ("loss_value", "scalar", True), ("model", "model", False),
              ("extra", "tensor", False)]


def test_a_row_plan_renders_each_port_by_its_kind():
    plan = row_plan(LOSS_PORTS, {"model": "m.model"}, stored=("extra",))
    assert plan == RowPlan(((FIXED, '"loss": {"kind": "loss", "digest": null, "summary": null}'),
                            (SUMMARY, '"loss_value": {"kind": "scalar", "digest": null, "summary": '),
                            (FIXED, '"model": {"kind": "model", "digest": null, "state": "m.model"}'),
                            (RAW, '"extra": {"kind": "tensor", "digest": ')), (("loss_value", 0),))
    assert plan.render([np.float32(0.5), '"abc", "summary": {"shape": [2]}}']) == (
        '{"loss": {"kind": "loss", "digest": null, "summary": null}, '
        '"loss_value": {"kind": "scalar", "digest": null, "summary": 0.5}, '
        '"model": {"kind": "model", "digest": null, "state": "m.model"}, '
        '"extra": {"kind": "tensor", "digest": "abc", "summary": {"shape": [2]}}}')


def test_missing_values_render_as_nulls():
    text = row_plan(LOSS_PORTS, {}, stored=("extra",)).render([None, None])
    assert '"summary": null}, "model": {"kind": "model", "digest": null, "state": null}, ' in text
    assert text.endswith('"extra": {"kind": "tensor", "digest": null, "summary": null}}')


def test_the_renderer_makes_rows_and_numbers_each_metric_in_message_order():
    renderer = RowRenderer("run1")
    messages = [("row", ("run1", "cached0", 0, "training_loss", "cached", 1.0, 0.0, None, 1, "k0", "{}", "{}", "{}"),
                 [("loss_value", 0.9)]),
                ("type", "training_loss", LOSS_PORTS[:2]),
                ("cards", [(1, "loss1", "training_loss", "k1", {"g": 1}, {}, {}),
                           (2, "loss2", "training_loss", "k2", {}, {"g": 2}, {})]),
                ("done", 1, 2.0, 0.01, [0.7]),
                ("done", 2, 3.0, 0.01, [None])]
    executions, metrics = renderer.render(messages)
    assert [row[1] for row in executions] == ["cached0", "loss1", "loss2"]
    assert executions[1][:10] == ("run1", "loss1", 1, "training_loss", "done", 2.0, 0.01, None, 0, "k1")
    assert executions[1][10] == ('{"loss": {"kind": "loss", "digest": null, "summary": null}, '
                                 '"loss_value": {"kind": "scalar", "digest": null, "summary": 0.7}}')
    assert executions[1][11:] == ('{"g": 1}', "{}")
    assert metrics == [("run1", "cached0", "loss_value", 0, 0.9), ("run1", "loss1", "loss_value", 1, 0.7)]


def test_a_metric_series_is_summarized_and_each_of_its_values_is_a_metric_step():
    ports = [("model", "model", True), ("loss_value", "tensor", True), ("loop_info", "info", False)]
    plan = row_plan(ports, {"model": "m.model"})
    assert [how for how, _ in plan.parts] == [FIXED, SUMMARY, SUMMARY] and plan.metrics == (("loss_value", 0),)
    renderer = RowRenderer("run1")
    renderer.render([("type", "training_loop", ports), ("cards", [(3, "loop", "training_loop", "k", {}, {}, {})])])
    executions, metrics = renderer.render([("done", 3, 1.0, 0.5, [{"values": [0.9, 0.5, 0.25]}, {"steps": 3}])])
    assert '"loss_value": {"kind": "tensor", "digest": null, "summary": {"values": [0.9, 0.5, 0.25]}}' \
        in executions[0][10]
    assert metrics == [("run1", "loop", "loss_value", step, value) for step, value in enumerate([0.9, 0.5, 0.25])]


@pytest.mark.parametrize("value, series", [
    (None, []), (0.5, [0.5]), (3, [3.0]), (np.float32(0.25), [0.25]), (torch.tensor([1.0, 0.5]), [1.0, 0.5]),
    ([2, 1], [2.0, 1.0]), ({"values": [0.5, 0.25]}, [0.5, 0.25]), ({"value": 0.75}, [0.75]), ({"shape": [2]}, []),
    ("not a number", []), ([0.5, "x"], []), (object(), []),
])
def test_metric_series_reads_numbers_tensors_lists_and_recorded_summaries(value, series):
    assert metric_series(value) == series


def test_what_a_done_message_summarizes():
    assert summarized("info", False) and summarized("scalar", True) and summarized("dataframe", False)
    assert summarized("tensor", True) and not summarized("tensor", False)
    assert not summarized("model", True) and not summarized("loss", False)


def test_versions_json():
    assert versions_json({}) == "{}"
    assert versions_json({"model.model": 3, "opt.optimizer": 1}) == '{"model.model": 3, "opt.optimizer": 1}'


def test_run_result_metrics_of_a_block_of_5_steps_are_the_5_losses_of_the_hand_written_loop(regression_csv, store):
    import cardloop
    from tests.blocks import hand_written_losses, steps_pipeline

    result = cardloop.run(steps_pipeline(regression_csv, times=5), store=store, threads=1)
    assert result.metrics("loss_value") == hand_written_losses(regression_csv, 5)


def test_run_result_metrics_leave_out_skipped_iterations(regression_csv, store):
    import cardloop
    from tests.blocks import hand_written_losses, steps_pipeline

    every_second = {"every": 2, "of": "steps"}  # the loss (and the step after it) in iterations 2 and 4 only
    result = cardloop.run(steps_pipeline(regression_csv, times=5, loss_when=every_second), store=store, threads=1)
    assert result.metrics("loss_value") == hand_written_losses(regression_csv, 2)


def test_run_result_metrics_of_nested_blocks_follow_the_order_the_cards_ran_in(regression_csv, store):
    import cardloop
    from tests.blocks import hand_written_losses, nested_pipeline

    result = cardloop.run(nested_pipeline(regression_csv, epochs=2, steps=3), store=store, threads=1)
    hand = hand_written_losses(regression_csv, 7)  # the score after epoch e is the loss before step 3(e + 1) + 1
    assert result.metrics("loss_value") == [*hand[0:3], hand[3], *hand[3:6], hand[6]]


def test_run_result_metrics_of_a_block_served_from_the_store_are_those_of_the_run_that_ran_it(regression_csv, store):
    import cardloop
    from tests.blocks import steps_pipeline

    first = cardloop.run(steps_pipeline(regression_csv, times=5), store=store, threads=1)
    again = cardloop.run(steps_pipeline(regression_csv, times=5), store=store, threads=1)
    assert "steps" in again.cached and again.metrics() == first.metrics() and len(first.metrics()) == 5


def test_run_result_metrics_put_a_blocks_values_between_the_cards_before_and_after_it(regression_csv, store):
    import cardloop
    from tests.blocks import around_pipeline, hand_written_losses

    result = cardloop.run(around_pipeline(regression_csv, times=3), store=store, threads=1)
    hand = hand_written_losses(regression_csv, 4)
    assert result.metrics("loss_value") == [hand[0], *hand[:3], hand[3]]
