"""Run records: runs, card executions, metrics and artifacts in SQLite, shared by threads and processes."""

from __future__ import annotations

from array import array
import json
import math
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from cardloop.errors import StoreError
from tests.filesystems import fill, read_only, tmpfs
from cardloop.store.records import (
    SCHEMA_VERSION,
    ArtifactRecord,
    CardExecution,
    Metric,
    RunRecords,
    StateSnapshot,
)

PIPELINE = {"version": 1, "name": "basic", "cards": [{"id": "data", "type": "data_load"}]}


@pytest.fixture
def records(tmp_path):
    with RunRecords(tmp_path / "runs.sqlite") as opened:
        yield opened


def execution(run_id, card_id, position=0, **fields):
    return CardExecution(**{"run_id": run_id, "card_id": card_id, "position": position, "card_type": "training_loss",
                            "status": "done", "started_at": time.time(), "seconds": 0.01, **fields})


def test_a_run_starts_running_and_finishes_with_its_status(records):
    run_id = records.start_run(name="basic", pipeline=PIPELINE, executor="process", persist="all",
                               options={"device": "cpu"})
    run = records.get_run(run_id)
    assert (run.name, run.executor, run.persist, run.status) == ("basic", "process", "all", "running")
    assert run.pipeline == PIPELINE and run.options == {"device": "cpu"} and run.ended_at is None
    records.finish_run(run_id, "failed", error="card 'loss0' failed")
    run = records.get_run(run_id)
    assert run.status == "failed" and run.error == "card 'loss0' failed" and run.ended_at >= run.started_at


def test_a_run_cannot_finish_as_running_or_unknown(records):
    run_id = records.start_run(name="basic", pipeline=PIPELINE)
    with pytest.raises(ValueError, match="succeeded, failed, cancelled"):
        records.finish_run(run_id, "running")
    with pytest.raises(StoreError, match="no run 'nope'"):
        records.finish_run("nope", "succeeded")


def test_runs_are_listed_newest_first(records):
    ids = [records.start_run(name=f"run{i}", pipeline=PIPELINE) for i in range(3)]
    assert [r.run_id for r in records.list_runs()] == ids[::-1]
    assert len(records.list_runs(limit=2)) == 2


def test_a_run_is_found_by_a_unique_prefix_of_its_id(records):
    records.start_run("abc123", name="a", pipeline=PIPELINE)
    records.start_run("abd456", name="b", pipeline=PIPELINE)
    records.start_run("abd", name="c", pipeline=PIPELINE)
    assert records.get_run("abc").name == "a"
    assert records.get_run("abd").name == "c"
    assert records.get_run("abd4").name == "b"
    with pytest.raises(StoreError, match="no run has the id or id prefix 'zzz'"):
        records.get_run("zzz")
    with pytest.raises(StoreError, match="matches several runs"):
        records.get_run("ab")


def test_card_executions_come_back_in_pipeline_order_with_their_outputs(records):
    run_id = records.start_run(name="basic", pipeline=PIPELINE)
    outputs = {"loss": {"kind": "loss", "digest": "ab" * 32, "summary": {"value": 0.5}},
               "model": {"kind": "model", "digest": None, "summary": {}}}
    records.add_card_executions([
        execution(run_id, "loss0", 1, outputs=outputs, cache_key="k1", states_seen={"model": 2},
                  states_made={"model": 3}),
        {"run_id": run_id, "card_id": "data", "position": 0, "card_type": "data_load", "status": "cached",
         "started_at": 1.0, "seconds": 0.0, "cache_hit": True, "cache_key": "k0"},
    ])
    rows = records.card_executions(run_id)
    assert [r.card_id for r in rows] == ["data", "loss0"]
    assert rows[0].cache_hit is True and rows[0].status == "cached"
    loss0 = records.card_execution(run_id, "loss0")
    assert loss0.outputs == outputs and loss0.states_seen == {"model": 2} and loss0.states_made == {"model": 3}
    assert records.card_execution(run_id, "missing") is None


def test_execution_rows_list_a_runs_cards_in_order_with_their_outputs_as_json_text(records):
    run_id = records.start_run(name="basic", pipeline=PIPELINE)
    outputs = {"loss": {"kind": "loss", "digest": None, "summary": 0.5}}
    records.add_card_executions([execution(run_id, "loss0", 1, outputs=outputs, error="card 'loss0' failed"),
                                 execution(run_id, "data", 0, status="cached", cache_hit=True, seconds=0.0)])
    rows = records.execution_rows(run_id)
    assert [(r.position, r.card_id, r.status, r.cache_hit) for r in rows] == [(0, "data", "cached", True),
                                                                               (1, "loss0", "done", False)]
    assert json.loads(rows[1].outputs) == outputs and rows[1].error == "card 'loss0' failed"
    assert rows[1].card_type == "training_loss" and rows[1].seconds == 0.01


def test_a_card_execution_status_must_be_known():
    with pytest.raises(ValueError, match="done, cached, failed, skipped"):
        execution("r", "c", status="running")


def test_a_batch_of_rows_that_fails_part_way_writes_none_of_them(records):
    run_id = records.start_run(name="basic", pipeline=PIPELINE)
    with pytest.raises(sqlite3.IntegrityError):
        records.add_metrics([Metric(run_id, "loss0", "loss", 0, 1.0), Metric(run_id, None, "loss", 1, 2.0)])
    assert records.metrics(run_id) == []


def test_a_row_given_as_a_mapping_with_an_unknown_field_is_refused(records):
    with pytest.raises(TypeError, match="bad"):
        records.add_metrics([{"run_id": "r", "card_id": "c", "name": "loss", "step": 0, "value": 1.0, "bad": 1}])


def test_the_default_database_is_runs_sqlite_in_the_store_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CARDLOOP_STORE", str(tmp_path))
    with RunRecords() as records:
        assert records.path == tmp_path / "runs.sqlite" and records.path.exists()


def test_metrics_are_filtered_by_name_and_ordered_by_step(records):
    run_id = records.start_run(name="basic", pipeline=PIPELINE)
    records.add_metrics([Metric(run_id, "loss1", "loss", 1, 0.5), Metric(run_id, "loss0", "loss", 0, 0.75),
                         Metric(run_id, "acc0", "accuracy", 0, 0.1)])
    assert [(m.step, m.value) for m in records.metrics(run_id, "loss")] == [(0, 0.75), (1, 0.5)]
    assert [m.name for m in records.metrics(run_id)] == ["accuracy", "loss", "loss"]


def test_the_latest_artifact_of_a_port_is_found_by_card_and_cache_key(records):
    first, second = records.start_run(name="one", pipeline=PIPELINE), records.start_run(name="two", pipeline=PIPELINE)
    records.add_card_executions([execution(first, "model", cache_key="k-old"),
                                 execution(second, "model", cache_key="k-new"),
                                 execution(second, "step", status="failed", cache_key="k-step")])
    records.add_artifacts([
        ArtifactRecord("aa" * 32, "model", "model-safetensors", 10, first, "model", "model", created_at=1.0),
        ArtifactRecord("bb" * 32, "model", "model-safetensors", 10, second, "model", "model", created_at=2.0),
        ArtifactRecord("cc" * 32, "model", "model-safetensors", 10, second, "step", "model", created_at=3.0),
    ])
    assert records.latest_artifact("model", "model").digest == "bb" * 32
    assert records.latest_artifact("model", "model", cache_key="k-old").digest == "aa" * 32
    assert records.latest_artifact("model", "model", cache_key="k-other") is None
    assert records.latest_artifact("step", "model", cache_key="k-step") is None
    assert records.latest_artifact("model", "optimizer") is None


def test_the_outputs_of_executions_are_found_by_cache_key_newest_first_and_only_from_those_that_ran(records):
    first, second, third = (records.start_run(name=n, pipeline=PIPELINE) for n in ("one", "two", "three"))
    stored, summarized = {"loss": {"kind": "loss", "digest": "ab" * 32}}, {"loss": {"kind": "loss", "digest": None}}
    records.add_card_executions([
        execution(first, "loss0", cache_key="k", outputs=stored, started_at=1.0),
        execution(second, "loss0", cache_key="k", outputs=summarized, started_at=2.0),
        execution(third, "loss0", cache_key="k", outputs=stored, started_at=3.0, status="cached", cache_hit=True),
        execution(third, "loss1", cache_key="k-failed", status="failed", started_at=3.0),
    ])
    assert {key: json.loads(text) for key, text in records.newest_outputs(["k", "k-failed", "k-none"]).items()} \
        == {"k": summarized}
    assert [json.loads(text) for text in records.outputs_for_key("k")] == [summarized, stored]


def test_state_snapshots_are_kept_per_run_and_found_by_the_key_of_the_card_that_made_them(records):
    first, second = records.start_run(name="one", pipeline=PIPELINE), records.start_run(name="two", pipeline=PIPELINE)
    members = {"model.model": {"kind": "model", "digest": "aa" * 32},
               "opt.optimizer": {"kind": "optimizer", "digest": "bb" * 32}}
    records.add_state_snapshots([
        {"run_id": first, "card_id": "step0", "position": 8, "group": "model.model", "version": 3,
         "cache_key": "k-step0", "members": members, "created_at": 1.0},
        StateSnapshot(second, "step0", 8, "model.model", 3, "k-step0", members, created_at=2.0),
        StateSnapshot(second, "model", 1, "model.model", 0, "k-model", {}, created_at=3.0),
    ])
    assert [(s.card_id, s.version) for s in records.state_snapshots(second)] == [("model", 0), ("step0", 3)]
    latest = records.latest_state_snapshot("k-step0", "model.model")
    assert latest.run_id == second and latest.members == members
    assert records.latest_state_snapshot("k-step0", "other") is None


def test_recording_an_artifact_twice_keeps_one_row(records):
    row = ArtifactRecord("aa" * 32, "info", "info-json", 3, "run", "card", "info")
    records.add_artifacts([row, row])
    records.add_artifacts([row])
    assert records.latest_artifact("card", "info") == row


def test_the_database_is_in_wal_mode(records, tmp_path):
    records.start_run(name="basic", pipeline=PIPELINE)
    assert sqlite3.connect(tmp_path / "runs.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_share_one_records_object_without_losing_rows(records):
    run_id = records.start_run(name="threads", pipeline=PIPELINE)

    def write(thread: int) -> None:
        for step in range(50):
            records.add_metrics([Metric(run_id, f"card{thread}", "loss", step, float(step))])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(records.metrics(run_id, "loss")) == 200


def write_runs(path: str, worker: int, runs: int, start: multiprocessing.Event) -> None:
    """One process's share of the concurrent-writers test."""
    start.wait()
    records = RunRecords(path)
    for i in range(runs):
        run_id = records.start_run(f"w{worker}-{i:03d}", name=f"w{worker}-{i}", pipeline=PIPELINE)
        records.add_card_executions([execution(run_id, f"card{c}", c) for c in range(5)])
        records.add_metrics([Metric(run_id, "card0", "loss", step, step / 10) for step in range(10)])
        records.add_artifacts([ArtifactRecord(f"{worker}{i:063d}", "info", "info-json", 1, run_id, "card0", "out")])
        records.finish_run(run_id, "succeeded")
    records.close()


def test_two_processes_writing_at_once_neither_corrupt_nor_lose_rows(tmp_path):
    path = str(tmp_path / "runs.sqlite")
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    workers = [spawn.Process(target=write_runs, args=(path, w, 40, start)) for w in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with RunRecords(path) as records:
        runs = records.list_runs(limit=1000)
        assert len(runs) == 80 and all(r.status == "succeeded" for r in runs)
        assert all(len(records.card_executions(r.run_id)) == 5 for r in runs)
        assert all(len(records.metrics(r.run_id)) == 10 for r in runs)
    database = sqlite3.connect(path)
    assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert database.execute("SELECT count(*) FROM artifacts").fetchone()[0] == 80



OPEN_AT_ONCE = """
import os, sys, time
from cardloop.store.records import RunRecords
folder, go, me = sys.argv[1], sys.argv[2], sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.001)
for k in range(40):  # the processes race to create each database
    RunRecords(os.path.join(folder, f"runs{k}.sqlite")).start_run(name="p" + me, pipeline={})
"""


def test_processes_opening_new_databases_at_the_same_moment_all_get_in(tmp_path):
    """Switching a new database to WAL can fail at once, without waiting, when another process opens it at the
    same moment (two runs started together on a fresh store did)."""
    import subprocess
    import sys

    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(tmp_path), str(go), str(i)],
                                  stderr=subprocess.PIPE) for i in range(6)]
    time.sleep(2)  # every process has imported cardloop and waits for the signal
    go.touch()
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    for k in range(40):
        with RunRecords(tmp_path / f"runs{k}.sqlite") as records:
            assert len(records.list_runs(10)) == 6


def test_a_nan_metric_comes_back_as_nan_and_infinities_as_they_are(records):
    run_id = records.start_run(name="diverged", pipeline=PIPELINE)
    records.add_metrics([Metric(run_id, f"loss{step}", "loss_value", step, value)
                         for step, value in enumerate([0.5, float("inf"), float("-inf"), float("nan")])])
    values = [m.value for m in records.metrics(run_id, "loss_value")]
    assert values[:3] == [0.5, float("inf"), float("-inf")] and math.isnan(values[3])


# The tables as cardloop made them before schema version 1: a metric's value could not be NULL (so not NaN).
VERSION_0_METRICS = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, pipeline TEXT NOT NULL, executor TEXT NOT NULL,
    persist TEXT NOT NULL, status TEXT NOT NULL, error TEXT, started_at REAL NOT NULL, ended_at REAL,
    options TEXT NOT NULL);
CREATE TABLE metrics (
    run_id TEXT NOT NULL, card_id TEXT NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL, value REAL NOT NULL);
CREATE INDEX metrics_by_run ON metrics (run_id, name, step);
INSERT INTO runs VALUES ('old', 'old', '{}', 'local', 'checkpoint', 'succeeded', NULL, 1.0, 2.0, '{}');
INSERT INTO metrics VALUES ('old', 'loss0', 'loss_value', 0, 0.75), ('old', 'loss1', 'loss_value', 1, 0.5);
"""


def test_a_database_made_before_nan_metrics_keeps_its_rows_and_takes_nan(tmp_path):
    path = tmp_path / "runs.sqlite"
    old = sqlite3.connect(path)
    old.executescript(VERSION_0_METRICS)
    old.close()
    with RunRecords(path) as records:
        assert [m.value for m in records.metrics("old")] == [0.75, 0.5]
        records.add_metrics([Metric("old", "loss2", "loss_value", 2, float("nan"))])
        assert math.isnan(records.metrics("old")[2].value) and records.get_run("old").status == "succeeded"
        records.start_run(name="new", pipeline=PIPELINE)  # the tables added since are there too
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# iteration_cards as schema version 1 made it: one row per run and body card, no chunks.
VERSION_1_ITERATION_CARDS = """
CREATE TABLE iteration_cards (
    run_id TEXT NOT NULL, path TEXT NOT NULL, card_type TEXT NOT NULL, depth INTEGER NOT NULL,
    executions INTEGER NOT NULL, skipped INTEGER NOT NULL, seconds REAL NOT NULL, status BLOB NOT NULL,
    times BLOB NOT NULL, indices BLOB NOT NULL, metric_names TEXT NOT NULL, metric_values BLOB NOT NULL,
    PRIMARY KEY (run_id, path));
INSERT INTO iteration_cards VALUES ('old', 'epochs.loss', 'training_loss', 1, 2, 0, 0.5, X'0101',
    X'0000803F0000803F', X'00000000000000000100000000000000', '["loss_value"]',
    X'000000000000E83F000000000000E03F');
PRAGMA user_version = 1;
"""


def test_a_database_made_before_chunked_iteration_cards_keeps_its_rows_and_takes_chunks(tmp_path):
    path = tmp_path / "runs.sqlite"
    old = sqlite3.connect(path)
    old.executescript(VERSION_1_ITERATION_CARDS)
    old.close()
    with RunRecords(path) as records:
        (row,) = records.iteration_cards("old")
        assert (row.path, row.executions, row.chunk) == ("epochs.loss", 2, 0)
        assert row.arrays()[3] == {"loss_value": array("d", [0.75, 0.5])}
        records.add_iteration_cards([("old", "epochs.loss", "training_loss", 1, 1, 0, 0.25, b"\x01",
                                      array("f", [1.0]).tobytes(), array("q", [2]).tobytes(), '["loss_value"]',
                                      array("d", [0.25]).tobytes(), 2)])
        (row,) = records.iteration_cards("old")
        assert row.executions == 3 and row.arrays()[2] == [(0,), (1,), (2,)]
        assert row.arrays()[3] == {"loss_value": array("d", [0.75, 0.5, 0.25])}
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_an_empty_records_file_is_refused_rather_than_taken_for_an_empty_history(tmp_path):
    (tmp_path / "runs.sqlite").touch()
    with pytest.raises(StoreError, match=r"runs.sqlite is empty \(0 bytes\), so its history is lost"):
        RunRecords(tmp_path / "runs.sqlite")
    assert (tmp_path / "runs.sqlite").stat().st_size == 0


def test_a_new_database_never_appears_empty_at_its_path(tmp_path):
    RunRecords(tmp_path / "runs.sqlite").close()
    assert (tmp_path / "runs.sqlite").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["runs.sqlite"]  # nothing left of the copy made aside


def test_records_that_are_not_a_database_are_refused_naming_the_file(tmp_path):
    (tmp_path / "runs.sqlite").write_bytes(b"these are not the runs you are looking for" * 100)
    with pytest.raises(StoreError, match=r"run records of store .* are damaged \(file is not a database\); move "
                                         r".*runs.sqlite aside"):
        RunRecords(tmp_path / "runs.sqlite").list_runs()


def test_a_truncated_database_is_reported_damaged(tmp_path):
    with RunRecords(tmp_path / "runs.sqlite") as records:
        for i in range(300):
            records.start_run(name=f"run{i}", pipeline={"cards": ["x" * 200] * 10})
    size = (tmp_path / "runs.sqlite").stat().st_size
    os.truncate(tmp_path / "runs.sqlite", size // 2)
    with pytest.raises(StoreError, match="are damaged"):
        RunRecords(tmp_path / "runs.sqlite").list_runs(1000)


def test_a_store_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "store").write_text("not a folder")
    with pytest.raises(StoreError, match=r"store '.*store' is a file, not a folder; give --store"):
        RunRecords(tmp_path / "store" / "runs.sqlite")


def test_records_that_are_a_folder_are_refused(tmp_path):
    (tmp_path / "runs.sqlite").mkdir()
    with pytest.raises(StoreError, match=r"are a folder .*runs.sqlite\), not a database file"):
        RunRecords(tmp_path / "runs.sqlite")


def test_a_read_only_store_is_read_and_a_write_says_it_is_read_only(tmp_path):
    with tmpfs(tmp_path / "mount") as mount:
        with RunRecords(mount / "runs.sqlite") as records:
            run_id = records.start_run(name="kept", pipeline=PIPELINE)
            records.add_metrics([Metric(run_id, "loss0", "loss_value", 0, 0.5)])
            records.finish_run(run_id, "succeeded")
        read_only(mount)
        with RunRecords(mount / "runs.sqlite") as records:
            assert records.read_only and records.get_run(run_id).status == "succeeded"
            assert [m.value for m in records.metrics(run_id)] == [0.5]
            with pytest.raises(StoreError, match=r"store '.*mount' is read-only .*give --store"):
                records.start_run(name="new", pipeline=PIPELINE)


def test_a_full_disk_is_reported_as_such_and_keeps_what_was_recorded(tmp_path):
    with tmpfs(tmp_path / "mount") as mount:
        with RunRecords(mount / "runs.sqlite") as records:
            run_id = records.start_run(name="kept", pipeline=PIPELINE)
        fill(mount)
        with pytest.raises(StoreError, match=r"store '.*mount' is out of disk space .*free some space"):
            RunRecords(mount / "runs.sqlite").start_run(name="new", pipeline={"cards": ["x" * 1000] * 1000})
        (mount / "filler").unlink()
        assert [r.run_id for r in RunRecords(mount / "runs.sqlite").list_runs()] == [run_id]


HOLD_A_RUN = """
import sys
from cardloop.store.records import RunRecords
records = RunRecords(sys.argv[1])
print(records.start_run(name="held", pipeline={}), flush=True)
sys.stdin.read()  # runs until the test kills it
"""


def test_a_run_shows_running_while_its_process_lives_and_interrupted_once_killed(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", HOLD_A_RUN, str(tmp_path / "runs.sqlite")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = process.stdout.readline().strip()
        with RunRecords(tmp_path / "runs.sqlite") as records:
            assert records.get_run(run_id).status == "running"
            process.kill()
            process.wait()
            assert records.get_run(run_id).status == "interrupted"
            assert [r.status for r in records.list_runs()] == ["interrupted"]
    finally:
        process.kill()


def test_a_run_left_running_is_interrupted_even_when_its_recorded_process_id_is_alive(records, tmp_path):
    """Runs recorded before runs held locks kept their process id; the system may have given it to another
    process since (here: this one, which is alive), so it proves nothing."""
    sqlite3.connect(tmp_path / "runs.sqlite", isolation_level=None).execute(
        "INSERT INTO runs VALUES ('old', 'old', '{}', 'local', 'checkpoint', 'running', NULL, 1.0, NULL, ?)",
        (json.dumps({"pid": os.getpid()}),))
    assert records.get_run("old").status == "interrupted"


def test_a_run_that_finished_lets_go_of_its_lock_file(records, tmp_path):
    run_id = records.start_run(name="basic", pipeline=PIPELINE)
    assert (tmp_path / "locks" / f"{run_id}.lock").exists()
    records.finish_run(run_id, "succeeded")
    assert records.get_run(run_id).status == "succeeded" and not (tmp_path / "locks" / f"{run_id}.lock").exists()


def test_a_database_of_schema_version_2_gains_the_sweep_tables_and_keeps_its_runs(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunRecords(path) as records:
        records.start_run("old", name="old", pipeline=PIPELINE)
        records.finish_run("old", "succeeded")
    old = sqlite3.connect(path)
    old.executescript("DROP TABLE sweeps; DROP TABLE sweep_variants; PRAGMA user_version = 2;")
    old.close()
    with RunRecords(path) as records:
        assert records.get_run("old").status == "succeeded"
        records.start_sweep("s1", name="p", pipeline=PIPELINE, settings={"a.x": [1]}, options={},
                            variants=[{"a.x": 1}])
        assert [s.sweep_id for s in records.list_sweeps()] == ["s1"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_sweep_is_recorded_with_its_variants_pending_until_each_run_ends(tmp_path):
    with RunRecords(tmp_path / "runs.sqlite") as records:
        records.start_sweep("sweep-1", name="p", pipeline=PIPELINE, settings={"a.x": [1, 2]}, options={"seed": 0},
                            variants=[{"a.x": 1}, {"a.x": 2}])
        records.finish_sweep_variant("sweep-1", 1, "run-b", "failed", "card 'a' (t) failed: no")
        assert [(v.index, v.settings, v.run_id, v.status) for v in records.get_sweep("sweep-1").variants] == [
            (0, {"a.x": 1}, None, "pending"), (1, {"a.x": 2}, "run-b", "failed")]
        records.finish_sweep("sweep-1", "failed", {"seed": 0, "shared_run_id": "run-s"})
        found = records.get_sweep("sweep-")
        assert (found.status, found.options["shared_run_id"], found.ended_at is not None) == ("failed", "run-s", True)


def test_a_sweep_id_that_matches_no_sweep_is_a_sentence_naming_it(tmp_path):
    with RunRecords(tmp_path / "runs.sqlite") as records:
        with pytest.raises(StoreError, match=r"no sweep has the id or id prefix 'nope' .*`cardloop sweeps` lists"):
            records.get_sweep("nope")


HOLD_A_SWEEP = """
import sys
from cardloop.store.records import RunRecords
records = RunRecords(sys.argv[1])
records.start_sweep("sweep-held", name="held", pipeline={}, settings={"a.x": [1]}, options={}, variants=[{"a.x": 1}])
print("started", flush=True)
sys.stdin.read()  # runs until the test kills it
"""


def test_a_sweep_shows_running_while_its_process_lives_and_interrupted_once_killed(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", HOLD_A_SWEEP, str(tmp_path / "runs.sqlite")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "started"
        with RunRecords(tmp_path / "runs.sqlite") as records:
            assert records.get_sweep("sweep-held").status == "running"
            process.kill()
            process.wait()
            assert [s.status for s in records.list_sweeps()] == ["interrupted"]
    finally:
        process.kill()


def test_a_sweep_that_finished_lets_go_of_its_lock_file(records, tmp_path):
    records.start_sweep("sweep-1", name="p", pipeline=PIPELINE, settings={"a.x": [1]}, options={}, variants=[])
    assert (tmp_path / "locks" / "sweep-1.lock").exists()
    records.finish_sweep("sweep-1", "succeeded")
    assert not (tmp_path / "locks" / "sweep-1.lock").exists()
    assert records.get_sweep("sweep-1").status == "succeeded"
