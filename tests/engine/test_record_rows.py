"""Rendering a recorder's messages into card-execution and metric rows."""

import numpy as np

from cardloop.engine.record_rows import FIXED, RAW, SUMMARY, RowPlan, RowRenderer, versions_json


def loss_plan():
    return RowPlan(((FIXED, '"loss": {"kind": "loss", "digest": null, "summary": null}'),
                    (SUMMARY, '"loss_value": {"kind": "scalar", "digest": null, "summary": '),
                    (RAW, '"extra": {"kind": "tensor", "digest": ')), (("loss_value", 0),))


def test_a_row_plan_renders_fixed_summary_and_raw_parts_as_one_json_object():
    text = loss_plan().render([np.float32(0.5), '"abc", "summary": {"shape": [2]}}'])
    assert text == ('{"loss": {"kind": "loss", "digest": null, "summary": null}, '
                    '"loss_value": {"kind": "scalar", "digest": null, "summary": 0.5}, '
                    '"extra": {"kind": "tensor", "digest": "abc", "summary": {"shape": [2]}}}')


def test_missing_values_render_as_nulls():
    text = loss_plan().render([None, None])
    assert '"summary": null}, "extra": {"kind": "tensor", "digest": null, "summary": null}}' in text


def test_the_renderer_makes_rows_and_numbers_each_metric_in_message_order():
    renderer = RowRenderer("run1")
    plan = loss_plan()
    messages = [("plan", 0, [list(p) for p in plan.parts], [list(m) for m in plan.metrics]),
                ("row", ("run1", "cached0", 0, "training_loss", "cached", 1.0, 0.0, None, 1, "k0", "{}", "{}", "{}"),
                 [("loss_value", 0.9)]),
                ("done", "loss1", 1, "training_loss", 2.0, 0.01, "k1", {"g": 1}, {}, 0, [0.7, None]),
                ("done", "loss2", 2, "training_loss", 3.0, 0.01, "k2", {}, {"g": 2}, 0, [None, None])]
    executions, metrics = renderer.render(messages)
    assert [row[1] for row in executions] == ["cached0", "loss1", "loss2"]
    assert executions[1][:10] == ("run1", "loss1", 1, "training_loss", "done", 2.0, 0.01, None, 0, "k1")
    assert executions[1][11:] == ('{"g": 1}', "{}")
    assert metrics == [("run1", "cached0", "loss_value", 0, 0.9), ("run1", "loss1", "loss_value", 1, 0.7)]


def test_versions_json():
    assert versions_json({}) == "{}"
    assert versions_json({"model.model": 3, "opt.optimizer": 1}) == '{"model.model": 3, "opt.optimizer": 1}'
