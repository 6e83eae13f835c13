"""Loop blocks under the process executor (engine/worker_blocks.py): the worker runs a whole block, and its body
cards' events, statistics, iteration checkpoints and partial runs are those of the local executor."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cardloop
from cardloop.engine import process
from cardloop.store.records import RunRecords
from tests.engine.test_blocks import KILLER, hand_loop, repeated_batch
from tests.oracle import assert_same_weights


@pytest.fixture(autouse=True)
def _fresh_workers():
    """Each test starts without warm workers and leaves none behind."""
    process.stop_workers()
    yield
    process.stop_workers()


def stats_of(store, run_id):
    return {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(run_id)}


def test_body_card_events_reach_the_progress_callback_named_by_their_iteration(regression_csv, store):
    events = []
    cardloop.run(repeated_batch(regression_csv, epochs=2, steps=2), store=store, threads=1, executor="process",
                 progress=events.append)
    started = [e.card_id for e in events if e.kind == "started" and "[" in (e.card_id or "")]
    done = [e for e in events if e.kind == "done" and "[" in (e.card_id or "")]
    assert started[:2] == ["epochs[0].steps", "epochs[0].steps[0].zero"]
    assert [e.card_id for e in done[:5]] == ["epochs[0].steps[0].zero", "epochs[0].steps[0].fwd",
                                             "epochs[0].steps[0].loss", "epochs[0].steps[0].back",
                                             "epochs[0].steps[0].step"]
    _, losses = hand_loop(regression_csv, 2, 2)
    loss = next(e for e in done if e.card_id == "epochs[1].steps[1].loss")
    assert (loss.card_type, loss.metrics["loss_value"]) == ("training_loss", losses[1][1])
    progress = [e for e in events if e.kind == "progress" and e.card_id == "epochs"]
    assert progress[0].iterations == [{"block": "epochs", "index": 0, "total": 2},
                                      {"block": "steps", "index": 0, "total": 2}]
    assert progress[-1].iterations == [{"block": "epochs", "index": 1, "total": 2}]


def test_the_body_cards_statistics_are_recorded_as_a_local_run_records_them(regression_csv, tmp_path):
    pipeline = repeated_batch(regression_csv, epochs=2, evaluate_every=2)
    local = cardloop.run(pipeline, store=tmp_path / "local", threads=1)
    remote = cardloop.run(pipeline, store=tmp_path / "process", threads=1, executor="process")
    local_stats, remote_stats = stats_of(tmp_path / "local", local.run_id), stats_of(tmp_path / "process",
                                                                                     remote.run_id)
    assert sorted(remote_stats) == sorted(local_stats)
    for path, row in local_stats.items():
        assert (remote_stats[path].executions, remote_stats[path].skipped) == (row.executions, row.skipped), path
    _, _, indices, metrics = remote_stats["epochs.steps.loss"].arrays()
    assert indices == local_stats["epochs.steps.loss"].arrays()[2]
    assert metrics == local_stats["epochs.steps.loss"].arrays()[3]


def test_workers_load_the_card_files_that_define_a_blocks_body_cards(regression_csv, store, tmp_path):
    cards = tmp_path / "killer.py"
    cards.write_text(KILLER)
    pipeline = repeated_batch(regression_csv, epochs=2)
    epochs = pipeline.card("epochs")
    epochs.body.cards.insert(0, epochs.body.cards[0].__class__(
        id="kill", type="test_kill_once", config={"at": -1}, inputs={"iteration": "epochs.iteration"}))
    result = cardloop.run(pipeline, store=store, threads=1, executor="process", cards=[cards])
    assert result.status == "succeeded"
    assert stats_of(store, result.run_id)["epochs.kill"].executions == 2


def test_a_run_killed_in_an_epoch_goes_on_from_the_last_stored_epoch_bit_for_bit(regression_csv, store, tmp_path):
    cards = tmp_path / "killer.py"
    cards.write_text(KILLER)
    pipeline = repeated_batch(regression_csv, epochs=4)
    marker = tmp_path / "killed"
    epochs = pipeline.card("epochs")
    epochs.body.cards.insert(0, epochs.body.cards[0].__class__(
        id="kill", type="test_kill_once", config={"at": 2, "marker": str(marker),
                                                  "records": str(store / "runs.sqlite")},
        inputs={"iteration": "epochs.iteration"}))
    path = pipeline.save(tmp_path / "killed.yaml")
    command = [sys.executable, "-m", "cardloop.cli", "run", str(path), "--store", str(store), "--threads", "1",
               "--quiet", "--cards", str(cards), "--executor", "process"]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 1 and marker.exists()  # the worker was killed: the run says so and fails
    assert "worker process died" in killed.stderr
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    last = RunRecords(store / "runs.sqlite").list_runs(1)[0]
    assert stats_of(store, last.run_id)["epochs.steps.fwd"].executions == 4  # epochs 2 and 3 only
    model, losses = hand_loop(regression_csv, 4, 2)
    assert_same_weights(cardloop.load_output(last.run_id, "epochs", "model", store=store), model)
    assert cardloop.load_output(last.run_id, "epochs", "loss", store=store) == losses


def test_more_epochs_go_on_from_the_last_epoch_a_run_before_stored(regression_csv, store):
    cardloop.run(repeated_batch(regression_csv, epochs=2), store=store, threads=1, executor="process")
    longer = cardloop.run(repeated_batch(regression_csv, epochs=4), store=store, threads=1, executor="process")
    assert stats_of(store, longer.run_id)["epochs.steps.fwd"].executions == 4  # epochs 2 and 3
    model, losses = hand_loop(regression_csv, 4, 2)
    assert_same_weights(cardloop.load_output(longer.run_id, "epochs", "model", store=store), model)
    assert cardloop.load_output(longer.run_id, "epochs", "loss", store=store) == losses


def test_until_an_iteration_stops_the_block_right_after_it(regression_csv, store):
    stopped = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, executor="process",
                           until="epochs[1]")
    records = RunRecords(store / "runs.sqlite")
    assert stopped.status == "succeeded"
    assert records.card_execution(stopped.run_id, "epochs").status == "stopped"
    assert stats_of(store, stopped.run_id)["epochs.steps.fwd"].executions == 4
    whole = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, executor="process")
    assert "epochs" in whole.executed  # a stopped block is never a cache hit: epochs 0-1 from its checkpoints
    assert stats_of(store, whole.run_id)["epochs.steps.fwd"].executions == 2
    model, _ = hand_loop(regression_csv, 3, 2)
    assert_same_weights(cardloop.load_output(whole.run_id, "epochs", "model", store=store), model)


def test_from_an_iteration_reruns_it_and_the_ones_after_it(regression_csv, store):
    cardloop.run(repeated_batch(regression_csv), store=store, threads=1, executor="process")
    again = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, executor="process",
                         from_card="epochs[1]")
    assert stats_of(store, again.run_id)["epochs.steps.fwd"].executions == 4
    model, _ = hand_loop(regression_csv, 3, 2)
    assert_same_weights(cardloop.load_output(again.run_id, "epochs", "model", store=store), model)


def test_persist_all_keeps_every_iterations_outputs_under_its_path(regression_csv, store):
    result = cardloop.run(repeated_batch(regression_csv, epochs=2), store=store, threads=1, executor="process",
                          persist="all")
    row = RunRecords(store / "runs.sqlite").card_execution(result.run_id, "epochs[1].steps[0].loss")
    assert row is not None and row.status == "done"
    _, losses = hand_loop(regression_csv, 2, 2)
    assert cardloop.load_output(result.run_id, "epochs[1].steps[0].loss", "loss_value", store=store) == losses[1][0]
    predictions = cardloop.load_output(result.run_id, "epochs[1].steps[1].fwd", "predictions", store=store)
    assert predictions.shape == (16, 1)


def test_only_an_iteration_runs_that_iteration_from_the_store(regression_csv, store):
    cardloop.run(repeated_batch(regression_csv), store=store, threads=1, executor="process", persist="all")
    alone = cardloop.run(repeated_batch(regression_csv), store=store, threads=1, executor="process",
                         only="epochs[1]")
    assert alone.executed == ["epochs"]
    stats = stats_of(store, alone.run_id)["epochs.steps.fwd"]
    assert stats.executions == 2 and stats.arrays()[2] == [(1, 0), (1, 1)]


def test_a_failing_body_card_names_its_iteration_and_what_ran_before_it_is_recorded(regression_csv, store):
    p = repeated_batch(regression_csv)
    p.card("model").config["input_dim"] = 5  # the batch has 4 features
    with pytest.raises(cardloop.CardFailed) as failed:
        cardloop.run(p, store=store, threads=1, executor="process")
    assert failed.value.card_id == "epochs[0].steps[0].fwd"
    stats = stats_of(store, failed.value.result.run_id)
    assert (stats["epochs.steps.zero"].executions, stats["epochs.steps.fwd"].executions) == (1, 0)
