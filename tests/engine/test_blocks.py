"""Running loop blocks (engine/blocks.py): iterations, nesting, carried and collected values, `when`, skipped
cards, statistics, and iteration boundaries that a later run takes up (resume, more epochs, a changed epoch)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import cardloop
from cardloop.pipeline.model import Pipeline
from cardloop.store.records import RunRecords
from tests.oracle import assert_same_weights, build_mlp

BATCH = 16


def repeated_batch(csv, *, epochs: int = 3, steps: int = 2, clip_late: float | None = None,
                   when_step: dict | None = None, evaluate_every: int | None = None) -> Pipeline:
    """epochs x steps on the first batch of the file: the smallest nested loop."""
    p = Pipeline("blocks")
    data = p.add("data_load", "data", path=str(csv))
    batch = p.add("training_prepare_batch", "batch", train_dataset=data["dataset"], batch_index=0, batch_size=BATCH)
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)
    opt = p.add("training_init_optimizer", "opt", model=model["model"], learning_rate=0.01)
    outer = p.add_block("epochs", times=epochs, inputs={"model": model["model"], "optimizer": opt["optimizer"],
                                                        "batch": batch["batch_data"], "data": data["dataset"]})
    inner = outer.body.add_block("steps", times=steps, inputs={"model": outer["model"],
                                                               "optimizer": outer["optimizer"],
                                                               "batch": outer["batch"]})
    body = inner.body
    zero = body.add("training_zero_grad", "zero", optimizer=inner["optimizer"])
    fwd = body.add("training_forward", "fwd", model=inner["model"], batch_data=inner["batch"])
    loss = body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=inner["batch"])
    back = body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    if clip_late is None:
        step = body.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"],
                        when=when_step)
    else:  # clipped from the second epoch on: a card that changes from epoch 1 on
        body.add("training_optimizer_step", "early", optimizer=zero["optimizer"], model=back["model"],
                 when={"value": outer["iteration"], "below": 1})
        step = body.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"],
                        gradient_clip=clip_late, when={"value": outer["iteration"], "at_least": 1})
    body.outputs.update(model=str(step["model"]), optimizer=str(step["optimizer"]), loss=str(loss["loss_value"]))
    outer.body.outputs.update(model=str(inner["model"]), optimizer=str(inner["optimizer"]), loss=str(inner["loss"]))
    if evaluate_every:
        ev = outer.body.add("evaluate", "eval", model=inner["model"], dataset=outer["data"],
                            when={"every": evaluate_every, "of": "epochs"})
        outer.body.outputs["mse"] = str(ev["mse"])
    return p


def hand_loop(csv, epochs: int, steps: int, clip_from: int | None = None, clip: float = 0.0,
              step_when=lambda epoch, step: True):
    import pandas as pd

    frame = pd.read_csv(csv)
    X = torch.tensor(frame.drop(columns="target").values[:BATCH], dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values[:BATCH], dtype=torch.float32)
    model = build_mlp(4, [8])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for epoch in range(epochs):
        row = []
        for s in range(steps):
            opt.zero_grad()
            loss = F.mse_loss(model(X), y)
            loss.backward()
            row.append(loss.item())
            if clip_from is not None and epoch >= clip_from:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if step_when(epoch, s):
                opt.step()
        losses.append(row)
    return model, losses


def test_a_nested_loop_trains_bit_for_bit_like_the_hand_written_loop(regression_csv, store):
    result = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, keep_outputs=True)
    model, losses = hand_loop(regression_csv, 3, 2)
    assert result.status == "succeeded"
    assert_same_weights(result.outputs["epochs"]["model"], model)
    assert result.outputs["epochs"]["loss"] == losses  # collected: one list per epoch, one loss per step


def test_the_process_executor_runs_blocks_with_the_same_result(regression_csv, store):
    result = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, executor="process")
    model, losses = hand_loop(regression_csv, 3, 2)
    assert_same_weights(result.outputs["epochs"]["model"], model)
    assert result.outputs["epochs"]["loss"] == losses


def test_every_k_of_a_loop_counts_its_iterations_from_one_and_skips_the_others(regression_csv, store):
    result = cardloop.run(repeated_batch(regression_csv, epochs=4, evaluate_every=2), store=store, threads=1)
    mse = result.outputs["epochs"]["mse"]
    assert [value is None for value in mse] == [True, False, True, False]
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(result.run_id)}
    evaluated = stats["epochs.eval"]
    status, _, indices, metrics = evaluated.arrays()
    assert (evaluated.executions, evaluated.skipped) == (4, 2)
    assert list(status) == [0, 1, 0, 1] and indices == [(0,), (1,), (2,), (3,)]
    assert math.isnan(metrics["mse"][0]) and metrics["mse"][1] == mse[1]


def test_a_skipped_optimizer_step_leaves_the_model_as_backward_left_it(regression_csv, store):
    when = {"value": "steps.iteration", "below": 1}  # only the first step of each epoch updates the model
    result = cardloop.run(repeated_batch(regression_csv, when_step=when), store=store, threads=1)
    model, _ = hand_loop(regression_csv, 3, 2, step_when=lambda epoch, step: step < 1)
    assert_same_weights(result.outputs["epochs"]["model"], model)
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(result.run_id)}
    assert (stats["epochs.steps.step"].executions, stats["epochs.steps.step"].skipped) == (6, 3)


def test_any_runs_a_card_when_one_of_its_conditions_holds(regression_csv, store):
    when = {"any": [{"every": 3, "of": "steps"}, {"value": "epochs.iteration", "equals": 0}]}
    result = cardloop.run(repeated_batch(regression_csv, steps=4, when_step=when), store=store, threads=1)
    model, _ = hand_loop(regression_csv, 3, 4, step_when=lambda epoch, step: (step + 1) % 3 == 0 or epoch == 0)
    assert_same_weights(result.outputs["epochs"]["model"], model)
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(result.run_id)}
    assert (stats["epochs.steps.step"].executions, stats["epochs.steps.step"].skipped) == (12, 6)


def test_body_card_events_name_the_iteration_and_block_progress_names_every_loop(regression_csv, store):
    events = []
    cardloop.run(repeated_batch(regression_csv, epochs=2, steps=2), store=store, threads=1, progress=events.append)
    done = [e.card_id for e in events if e.kind == "done" and e.card_id and "[" in e.card_id]
    assert done[:5] == ["epochs[0].steps[0].zero", "epochs[0].steps[0].fwd", "epochs[0].steps[0].loss",
                        "epochs[0].steps[0].back", "epochs[0].steps[0].step"]
    assert "epochs[1].steps[1].step" in done and "epochs[0].steps" in done
    progress = [e for e in events if e.kind == "progress" and e.card_id == "epochs"]
    assert progress[0].iterations == [{"block": "epochs", "index": 0, "total": 2},
                                      {"block": "steps", "index": 0, "total": 2}]
    assert progress[-1].iterations == [{"block": "epochs", "index": 1, "total": 2}]
    assert "loss_value" in progress[0].metrics


def test_more_epochs_go_on_from_the_last_epoch_a_run_before_stored(regression_csv, store, tmp_path):
    cardloop.run(repeated_batch(regression_csv, epochs=2), store=store, threads=1)
    longer = cardloop.run(repeated_batch(regression_csv, epochs=4), store=store, threads=1)
    fresh = cardloop.run(repeated_batch(regression_csv, epochs=4), store=tmp_path / "fresh", threads=1)
    assert_same_weights(longer.outputs["epochs"]["model"], fresh.outputs["epochs"]["model"])
    assert longer.outputs["epochs"]["loss"] == fresh.outputs["epochs"]["loss"]
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(longer.run_id)}
    assert stats["epochs.steps.fwd"].executions == 4  # epochs 2 and 3 only: 0 and 1 came from the store


def test_a_card_changed_from_epoch_one_on_takes_epoch_zero_from_the_store(regression_csv, store, tmp_path):
    cardloop.run(repeated_batch(regression_csv, clip_late=0.5), store=store, threads=1)
    changed = cardloop.run(repeated_batch(regression_csv, clip_late=0.05), store=store, threads=1)
    model, _ = hand_loop(regression_csv, 3, 2, clip_from=1, clip=0.05)
    assert_same_weights(changed.outputs["epochs"]["model"], model)
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(changed.run_id)}
    assert stats["epochs.steps.fwd"].executions == 4  # epochs 1 and 2


def test_from_a_block_runs_every_iteration_again(regression_csv, store):
    cardloop.run(repeated_batch(regression_csv), store=store, threads=1)
    again = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, from_card="epochs")
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(again.run_id)}
    assert stats["epochs.steps.fwd"].executions == 6


def test_an_unchanged_block_is_served_from_the_cache_as_one_card(regression_csv, store):
    first = cardloop.run(repeated_batch(regression_csv), store=store, threads=1)
    second = cardloop.run(repeated_batch(regression_csv), store=store, threads=1)
    assert "epochs" in second.cached and "epochs" not in second.executed
    assert_same_weights(second.outputs["epochs"]["model"], first.outputs["epochs"]["model"])
    assert second.outputs["epochs"]["loss"] == first.outputs["epochs"]["loss"]


def test_a_failing_body_card_names_its_iteration(regression_csv, store):
    p = repeated_batch(regression_csv)
    p.card("model").config["input_dim"] = 5  # the batch has 4 features
    with pytest.raises(cardloop.CardFailed) as failed:
        cardloop.run(p, store=store, threads=1)
    assert failed.value.card_id == "epochs[0].steps[0].fwd"
    assert failed.value.result.status == "failed"


KILLER = '''
import os, signal
from pathlib import Path
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.kinds import SCALAR


class KillConfig(CardConfig):
    at: int = 2
    marker: str = ""
    records: str = ""
    signal: str = "SIGKILL"


@card("test_kill_once", title="Kill once", category="test", inputs=[Port("iteration", SCALAR)],
      outputs=[Port("iteration", SCALAR)], config=KillConfig)
def kill_once(config, iteration):
    """SIGKILL its own process at iteration `at`, the first time only (the marker file says it happened), once
    the checkpoints of the iterations before it are in the run records (the recorder writes them a moment later)."""
    if iteration == config.at and not Path(config.marker).exists():
        import sqlite3, time
        for _ in range(6000):
            with sqlite3.connect(config.records) as db:
                if db.execute("SELECT count(*) FROM card_progress").fetchone()[0] >= config.at:
                    break
            time.sleep(0.01)
        Path(config.marker).touch()
        os.kill(os.getpid(), getattr(signal, config.signal))
    return {"iteration": iteration}
'''


@pytest.mark.parametrize("signal_name, returncode", [("SIGKILL", -9), ("SIGINT", 130)])
def test_a_run_killed_in_an_epoch_goes_on_from_the_last_stored_epoch_bit_for_bit(regression_csv, store, tmp_path,
                                                                                 signal_name, returncode):
    import subprocess
    import sys

    cards = tmp_path / "killer.py"
    cards.write_text(KILLER)
    pipeline = repeated_batch(regression_csv, epochs=4)
    marker = tmp_path / "killed"
    pipeline.card("epochs").body.cards.insert(0, pipeline.card("epochs").body.cards[0].__class__(
        id="kill", type="test_kill_once", config={"at": 2, "marker": str(marker), "signal": signal_name,
                                                  "records": str(store / "runs.sqlite")},
        inputs={"iteration": "epochs.iteration"}))
    path = pipeline.save(tmp_path / "killed.yaml")
    command = [sys.executable, "-m", "cardloop.cli", "run", str(path), "--store", str(store), "--threads", "1",
               "--quiet", "--cards", str(cards)]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert killed.returncode == returncode and marker.exists()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    records = RunRecords(store / "runs.sqlite")
    last = records.list_runs(1)[0]
    stats = {row.path: row for row in records.iteration_cards(last.run_id)}
    assert stats["epochs.steps.fwd"].executions == 4  # epochs 2 and 3: 0 and 1 came from the killed run
    model, losses = hand_loop(regression_csv, 4, 2)
    assert_same_weights(cardloop.load_output(last.run_id, "epochs", "model", store=store), model)
    assert cardloop.load_output(last.run_id, "epochs", "loss", store=store) == losses


def test_persist_all_keeps_every_iterations_outputs_under_its_path(regression_csv, store):
    result = cardloop.run(repeated_batch(regression_csv, epochs=2), store=store, threads=1, persist="all")
    records = RunRecords(store / "runs.sqlite")
    row = records.card_execution(result.run_id, "epochs[1].steps[0].loss")
    assert row is not None and row.status == "done"
    model, losses = hand_loop(regression_csv, 2, 2)
    assert cardloop.load_output(result.run_id, "epochs[1].steps[0].loss", "loss_value", store=store) == losses[1][0]
    predictions = cardloop.load_output(result.run_id, "epochs[1].steps[1].fwd", "predictions", store=store)
    assert predictions.shape == (BATCH, 1) and not predictions.requires_grad


def test_until_an_iteration_stops_the_run_right_after_it_and_is_never_a_cache_hit(regression_csv, store):
    stopped = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, until="epochs[1]")
    records = RunRecords(store / "runs.sqlite")
    assert stopped.status == "succeeded"
    assert records.card_execution(stopped.run_id, "epochs").status == "stopped"
    stats = {row.path: row for row in records.iteration_cards(stopped.run_id)}
    assert stats["epochs.steps.fwd"].executions == 4
    whole = cardloop.run(repeated_batch(regression_csv), store=store, threads=1)
    assert "epochs" in whole.executed  # epochs 0-1 from the stopped run's checkpoints, epoch 2 run
    stats = {row.path: row for row in records.iteration_cards(whole.run_id)}
    assert stats["epochs.steps.fwd"].executions == 2
    model, _ = hand_loop(regression_csv, 3, 2)
    assert_same_weights(whole.outputs["epochs"]["model"], model)


def test_until_a_body_card_stops_inside_the_iteration(regression_csv, store):
    stopped = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, until="epochs[1].steps[0].loss")
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(stopped.run_id)}
    assert stats["epochs.steps.loss"].executions == 3 and stats["epochs.steps.back"].executions == 2


def test_from_an_iteration_reruns_it_and_the_ones_after_it(regression_csv, store):
    cardloop.run(repeated_batch(regression_csv), store=store, threads=1)
    again = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, from_card="epochs[1]")
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(again.run_id)}
    assert stats["epochs.steps.fwd"].executions == 4
    model, _ = hand_loop(regression_csv, 3, 2)
    assert_same_weights(again.outputs["epochs"]["model"], model)


def test_only_an_iteration_runs_that_iteration_from_the_store(regression_csv, store):
    cardloop.run(repeated_batch(regression_csv), store=store, threads=1, persist="all")
    alone = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, only="epochs[1]")
    records = RunRecords(store / "runs.sqlite")
    assert alone.executed == ["epochs"]
    stats = {row.path: row for row in records.iteration_cards(alone.run_id)}
    assert stats["epochs.steps.fwd"].executions == 2
    assert stats["epochs.steps.fwd"].arrays()[2] == [(1, 0), (1, 1)]


def test_until_a_static_path_stops_after_the_cards_first_execution(regression_csv, store):
    stopped = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, until="epochs.steps.loss")
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(stopped.run_id)}
    assert stats["epochs.steps.loss"].executions == 1 and stats["epochs.steps.back"].executions == 0


def test_a_block_stopped_part_way_says_so_in_its_done_event(regression_csv, store):
    events = []
    cardloop.run(repeated_batch(regression_csv), store=store, threads=1, until="epochs[0]", progress=events.append)
    done = [e for e in events if e.kind == "done" and e.card_id == "epochs"]
    assert len(done) == 1 and done[0].status == "stopped"


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_long_block_writes_what_its_cards_did_in_chunks_that_read_back_whole(regression_csv, store, executor,
                                                                                monkeypatch):
    import sqlite3

    from cardloop.engine import blocks

    whole = cardloop.run(repeated_batch(regression_csv, epochs=4, steps=3), store=store / "whole", threads=1,
                         executor=executor)
    monkeypatch.setattr(blocks, "STATS_CHUNK", 20)  # 16 body card executions an epoch: a chunk every 2 epochs
    chunked = cardloop.run(repeated_batch(regression_csv, epochs=4, steps=3), store=store / "chunked", threads=1,
                           executor=executor)
    with sqlite3.connect(store / "chunked" / "runs.sqlite") as db:
        chunks = db.execute("SELECT chunk, executions FROM iteration_cards WHERE path = 'epochs.steps.loss'"
                            " ORDER BY chunk").fetchall()
    assert chunks == [(0, 6), (2, 6)]  # none left for a third: an empty chunk is not written
    read = {row.path: row for row in RunRecords(store / "chunked" / "runs.sqlite").iteration_cards(chunked.run_id)}
    expected = {row.path: row for row in RunRecords(store / "whole" / "runs.sqlite").iteration_cards(whole.run_id)}
    assert read.keys() == expected.keys()
    for path, row in read.items():
        assert (row.executions, row.status, row.indices, row.metric_values) == \
            (expected[path].executions, expected[path].status, expected[path].indices, expected[path].metric_values)
    assert chunked.metrics("loss_value") == whole.metrics("loss_value")


def best_model_pipeline(csv, epochs: int) -> Pipeline:
    """repeated_batch with validation after every epoch, early stopping's state and the best model carried."""
    p = repeated_batch(csv, epochs=epochs, evaluate_every=1)
    outer = p.card("epochs")
    outer.config["carry"] = {"early": {"init": None, "next": "stop.state"},
                             "best": {"init": None, "next": "keep.best_model"}}
    body = {card.id: card for card in outer.body.cards}
    stop = outer.body.add("training_early_stopping", "stop", metric=body["eval"]["mse"], state=outer["early"],
                          patience=10)
    outer.body.add("training_best_model", "keep", model=body["steps"]["model"], improved=stop["improved"],
                   best_model=outer["best"])
    return p


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_block_carrying_a_best_model_goes_on_from_its_checkpoint_with_that_model(regression_csv, store,
                                                                                  executor):
    cardloop.run(best_model_pipeline(regression_csv, 2), store=store, threads=1, executor=executor)
    longer = cardloop.run(best_model_pipeline(regression_csv, 4), store=store, threads=1, executor=executor,
                          keep_outputs=True)
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(longer.run_id)}
    assert stats["epochs.steps.fwd"].executions == 4  # epochs 2 and 3: 0 and 1 from the run before
    whole = cardloop.run(best_model_pipeline(regression_csv, 4), store=store.parent / "uninterrupted", threads=1,
                         keep_outputs=True)
    assert_same_weights(longer.outputs["epochs"]["best"], whole.outputs["epochs"]["best"])
    assert_same_weights(longer.outputs["epochs"]["model"], whole.outputs["epochs"]["model"])


def test_a_block_whose_body_reads_a_changed_data_file_runs_again_and_trains_on_the_new_data(tmp_path, store):
    from tests.engine.test_plan import block_reading

    data = tmp_path / "d.csv"
    data.write_text("a,b,target\n1,2,3\n4,5,6\n")
    first = cardloop.run(block_reading(data, 2), store=store, threads=1)
    assert cardloop.run(block_reading(data, 2), store=store, threads=1).executed == []
    data.write_text("a,b,target\n1,2,3\n4,5,60\n")
    second = cardloop.run(block_reading(data, 2), store=store, threads=1)
    fresh = cardloop.run(block_reading(data, 2), store=tmp_path / "fresh", threads=1)
    assert "epochs" in second.executed  # (with the cards before it, whose state the default policy keeps not)
    assert_same_weights(second.outputs["epochs"]["model"], fresh.outputs["epochs"]["model"])
    assert not torch.equal(first.outputs["epochs"]["model"].state_dict()["0.weight"],
                           second.outputs["epochs"]["model"].state_dict()["0.weight"])
