"""`when` on top-level cards (engine/when.py): a card runs only when its condition holds; a skipped card passes the
state it received on unchanged, and cards that need what it did not make are skipped too, on both executors."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import cardloop
from cardloop.pipeline.model import Pipeline
from cardloop.store.records import RunRecords
from tests.oracle import assert_same_weights, build_mlp

BATCH = 16


def one_step(csv, when_step: dict | None = None, when_opt: dict | None = None) -> Pipeline:
    """One SGD step of the guide's cards on the first batch, then the model cloned (a card that reads the state
    the step left) and evaluated."""
    p = Pipeline("when")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)
    opt = p.add("training_init_optimizer", "opt", model=model["model"], optimizer_type="sgd", learning_rate=0.1,
                when=when_opt)
    batch = p.add("training_prepare_batch", "batch", train_dataset=data["dataset"], batch_size=BATCH)
    zero = p.add("training_zero_grad", "zero", optimizer=opt["optimizer"])
    fwd = p.add("training_forward", "fwd", model=model["model"], batch_data=batch["batch_data"])
    loss = p.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"])
    back = p.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step = p.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"], when=when_step)
    p.add("model_clone", "clone", model=step["model"])
    p.add("evaluate", "eval", model=step["model"], dataset=data["dataset"])
    return p


def hand_model(csv, step: bool) -> torch.nn.Module:
    """The same model after forward, loss and backward on the first batch, and one SGD step if `step`."""
    frame = pd.read_csv(csv)
    X = torch.tensor(frame[["a", "b", "c", "d"]].to_numpy(dtype="float32"))[:BATCH]
    y = torch.tensor(frame[["target"]].to_numpy(dtype="float32"))[:BATCH]
    model = build_mlp(4, [8])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    F.mse_loss(model(X), y).backward()
    if step:
        optimizer.step()
    return model


def statuses(store, run_id: str) -> dict[str, str]:
    return {row.card_id: row.status for row in RunRecords(store / "runs.sqlite").execution_rows(run_id)}


@pytest.mark.parametrize("executor", ["local", "process"])
@pytest.mark.parametrize("limit, steps", [(1e-6, False), (1e9, True)])
def test_a_step_runs_only_when_its_when_holds_and_otherwise_leaves_the_model_as_backward_left_it(
        regression_csv, store, executor, limit, steps):
    result = cardloop.run(one_step(regression_csv, {"value": "loss.loss_value", "below": limit}), store=store,
                          threads=1, executor=executor)
    assert result.status == "succeeded"
    assert statuses(store, result.run_id)["step"] == ("done" if steps else "skipped")
    assert_same_weights(cardloop.load_output(result.run_id, "clone", "model", store=store),
                        hand_model(regression_csv, steps))


@pytest.mark.parametrize("executor", ["local", "process"])
def test_cards_that_need_what_a_skipped_card_did_not_make_are_skipped_too_and_say_why(regression_csv, store,
                                                                                     executor):
    never = {"value": "model.model", "equals": "a model is never this text"}
    result = cardloop.run(one_step(regression_csv, when_opt=never),
                          store=store, threads=1, executor=executor)
    found = statuses(store, result.run_id)
    assert result.status == "succeeded"
    assert [found[card] for card in ("opt", "zero", "fwd", "loss", "back", "step", "clone", "eval")] == \
        ["skipped", "skipped", "done", "done", "done", "skipped", "done", "done"]  # the model goes on unchanged
    errors = {row.card_id: row.error for row in RunRecords(store / "runs.sqlite").execution_rows(result.run_id)}
    assert errors["zero"] == "its input 'optimizer' comes from a card that was skipped"
    assert errors["opt"].startswith("its `when` did not hold")
    assert_same_weights(cardloop.load_output(result.run_id, "clone", "model", store=store),
                        hand_model(regression_csv, step=False))


def test_the_condition_is_part_of_the_card_s_key_and_an_unchanged_run_takes_what_follows_from_the_store(
        regression_csv, store):
    first = cardloop.run(one_step(regression_csv, {"value": "loss.loss_value", "below": 1e-6}), store=store,
                         threads=1)
    again = cardloop.run(one_step(regression_csv, {"value": "loss.loss_value", "below": 1e-6}), store=store,
                         threads=1)
    assert statuses(store, again.run_id)["eval"] == "cached"
    assert again.outputs["eval"]["mse"] == first.outputs["eval"]["mse"]
    changed = cardloop.run(one_step(regression_csv, {"value": "loss.loss_value", "below": 1e9}), store=store,
                           threads=1)
    assert statuses(store, changed.run_id)["step"] == "done" and statuses(store, changed.run_id)["eval"] == "done"
    assert changed.outputs["eval"]["mse"] != first.outputs["eval"]["mse"]


def test_run_events_say_a_top_level_card_was_skipped_and_why(regression_csv, store):
    events = []
    cardloop.run(one_step(regression_csv, {"finite": "loss.loss_value"}), store=store, threads=1,
                 progress=events.append)
    assert not any(e.kind == "skipped" for e in events)
    events.clear()
    cardloop.run(one_step(regression_csv, {"value": "loss.loss_value", "above": 1e9}), store=store, threads=1,
                 progress=events.append)
    (skipped,) = [e for e in events if e.kind == "skipped"]
    assert (skipped.card_id, skipped.position, skipped.status) == ("step", 8, "skipped")
    assert "its `when` did not hold" in skipped.error


def test_a_skipped_card_s_value_outputs_read_as_none_in_the_result(regression_csv, store):
    result = cardloop.run(one_step(regression_csv, {"value": "loss.loss_value", "below": 1e-6}), store=store,
                          threads=1, keep_outputs=True)
    assert result.outputs["step"]["step_info"] is None
    assert_same_weights(result.outputs["step"]["model"], hand_model(regression_csv, step=False))
