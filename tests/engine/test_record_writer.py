"""The record writer process: plain-value frames, and a real process writing a run's rows."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import cardloop
from cardloop.engine import recorder
from cardloop.engine.record_writer import RecordWriterProcess, decode, encode
from cardloop.errors import StoreError
from cardloop.examples import basic_training_loop
from cardloop.store.records import RunRecords


def test_frames_carry_plain_values_and_turn_numpy_and_torch_values_into_python_ones():
    values = {"norm": np.float64(2.5), "t": torch.tensor([1.0, 2.0]), "a": np.arange(2), "ok": True,
              "path": Path("data.csv"), "type": Path}
    decoded = decode(encode([("done", "c", 1, values, None)]))
    assert decoded == [("done", "c", 1, {"norm": 2.5, "t": [1.0, 2.0], "a": [0, 1], "ok": True, "path": "data.csv",
                                         "type": "<class 'pathlib.Path'>"}, None)]
    assert type(decoded[0][3]["norm"]) is float


def test_a_frame_that_names_any_global_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="plain values only, not posix.system"):
        decode(pickle.dumps([os.system]))


def run_row(run_id, card_id):
    return (run_id, card_id, 0, "t", "done", 1.0, 0.5, None, 0, "key", "{}", "{}", "{}")


def test_the_process_writes_every_batch_before_it_ends(tmp_path):
    database = tmp_path / "runs.sqlite"
    with RunRecords(database) as records:
        records.start_run("r1", name="p", pipeline={})
    writer = RecordWriterProcess(str(database), "r1")
    writer.write([("row", run_row("r1", "a"), [("loss_value", 0.5)])])
    writer.write([("row", run_row("r1", "b"), [("loss_value", 0.25)])])
    writer.close()
    with RunRecords(database) as records:
        assert [e.card_id for e in records.card_executions("r1")] == ["a", "b"]
        assert [(m.card_id, m.step, m.value) for m in records.metrics("r1", "loss_value")] == [
            ("a", 0, 0.5), ("b", 1, 0.25)]


def test_a_failing_writer_is_reported_with_its_reason(tmp_path):
    writer = RecordWriterProcess(str(tmp_path / "runs.sqlite"), "r1")
    writer.write([("cards", [(0, "c", "t", "key", {}, {}, {})])])  # type "t" was never described
    with pytest.raises(StoreError, match="record writer failed: KeyError: .t."):
        writer.close()


def comparable(records, run_id):
    rows = [(e.card_id, e.position, e.card_type, e.status, e.cache_key, e.outputs, e.states_seen, e.states_made)
            for e in records.card_executions(run_id)]
    metrics = [(m.card_id, m.name, m.step, m.value) for m in records.metrics(run_id, "loss_value")]
    return rows, metrics


@pytest.mark.parametrize(("persist", "executor"),
                         [("checkpoint", "local"), ("all", "local"), ("checkpoint", "process")])
def test_a_run_records_the_same_rows_through_the_process_as_in_thread(regression_csv, tmp_path, monkeypatch, persist,
                                                                      executor):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False, batches=3,
                                   batch_size=16)
    in_thread = cardloop.run(pipeline, store=tmp_path / "a", persist=persist, threads=1, executor=executor)
    monkeypatch.setattr(recorder, "WRITER_PROCESS_CARDS", 0)
    through_process = cardloop.run(pipeline, store=tmp_path / "b", persist=persist, threads=1, executor=executor)
    with RunRecords(tmp_path / "a" / "runs.sqlite") as a, RunRecords(tmp_path / "b" / "runs.sqlite") as b:
        expected = comparable(a, in_thread.run_id)
        assert len(expected[0]) == len(pipeline.cards) and len(expected[1]) == 3
        assert comparable(b, through_process.run_id) == expected
        assert b.get_run(through_process.run_id).status == "succeeded"


def test_a_frame_cut_short_by_a_dying_parent_is_dropped_and_everything_before_it_written(tmp_path):
    import io

    from cardloop.engine.record_writer import LENGTH_BYTES, serve

    frames = b""
    for card_id in ("a", "b"):
        data = encode([("row", run_row("r1", card_id), [])])
        frames += len(data).to_bytes(LENGTH_BYTES, "big") + data
    with RunRecords(tmp_path / "runs.sqlite") as records:
        serve(io.BytesIO(frames[:-5]), records, "r1")
        assert [e.card_id for e in records.card_executions("r1")] == ["a"]


def test_only_runs_that_execute_many_cards_start_a_writer_process(regression_csv, tmp_path, monkeypatch):
    from cardloop.engine import record_writer

    started = []
    original = record_writer.RecordWriterProcess.__init__

    def spy(self, *args):
        started.append(args)
        original(self, *args)

    monkeypatch.setattr(record_writer.RecordWriterProcess, "__init__", spy)
    monkeypatch.setattr(recorder, "WRITER_PROCESS_CARDS", 10)
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False, batches=2,
                                   batch_size=16)
    cardloop.run(pipeline, store=tmp_path, persist="all")  # 15 cards execute
    assert len(started) == 1
    cardloop.run(pipeline, store=tmp_path, only="fwd1")  # the rest of the plan comes from the store
    assert len(started) == 1
