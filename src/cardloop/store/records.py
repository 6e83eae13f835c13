"""Run records in SQLite: runs, card executions, metrics and the artifacts each card wrote.

One database file (`<store root>/runs.sqlite`) in WAL mode, shared by every executor, process and thread:
each thread of each process gets its own connection, writes take the write lock up front
(`BEGIN IMMEDIATE`) and wait for it (`busy_timeout`) instead of failing. A new database appears at its path
complete (made aside, then linked into place), so an empty file there is a damaged history, never a new one.
A store that cannot be written (a read-only mount or folder) is opened for reading. Every SQLite or file error
becomes a StoreError that names the store and says what to do. Needs no torch.

A running run holds an OS lock (`flock`) on `<store root>/locks/<run id>.lock` until it finishes: a run still
marked `running` whose lock nobody holds was killed, and is shown as `interrupted`. The OS drops the lock with
the process, so this never trusts a process id that the system may have given to another process since.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cardloop.errors import StoreError
from cardloop.store.record_types import (
    INTERRUPTED,
    RUN_STATUSES,
    ArtifactRecord,
    CardExecution,
    ExecutionRow,
    Metric,
    IterationCards,
    RunRecord,
    StateSnapshot,
    SweepRecord,
    SweepVariant,
)
from cardloop.store.root import RECORDS_FILE, default_store_root, store_problem

if TYPE_CHECKING:
    from typing import Self  # Python 3.11; annotations are not evaluated

__all__ = ["ArtifactRecord", "CardExecution", "ExecutionRow", "Metric", "RunRecord", "RunRecords", "StateSnapshot",
           "SweepRecord", "SweepVariant"]

BUSY_TIMEOUT_MS = 60_000
LOCKS_DIR = "locks"

#: The version of the tables below, kept in the database (`PRAGMA user_version`). 1: a metric's value may be
#: NULL, which stands for NaN (SQLite stores a NaN as NULL; +/-inf are stored as they are). 2: a body card's
#: iteration_cards are written in chunks as a long block runs (its memory stays flat), keyed by `chunk`. 3: sweeps
#: and their variants (cardloop.sweeps), two new tables.
SCHEMA_VERSION = 3

TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, pipeline TEXT NOT NULL, executor TEXT NOT NULL,
    persist TEXT NOT NULL, status TEXT NOT NULL, error TEXT, started_at REAL NOT NULL, ended_at REAL,
    options TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
CREATE TABLE IF NOT EXISTS card_executions (
    run_id TEXT NOT NULL, card_id TEXT NOT NULL, position INTEGER NOT NULL, card_type TEXT NOT NULL,
    status TEXT NOT NULL, started_at REAL NOT NULL, seconds REAL NOT NULL, error TEXT,
    cache_hit INTEGER NOT NULL, cache_key TEXT, outputs TEXT NOT NULL, states_seen TEXT NOT NULL,
    states_made TEXT NOT NULL, PRIMARY KEY (run_id, card_id));
DROP INDEX IF EXISTS card_executions_by_key;
CREATE INDEX IF NOT EXISTS card_executions_by_key_status ON card_executions (cache_key, status, started_at);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, card_id TEXT NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, name, step);
CREATE TABLE IF NOT EXISTS artifacts (
    digest TEXT NOT NULL, kind TEXT NOT NULL, codec TEXT NOT NULL, size INTEGER NOT NULL, run_id TEXT NOT NULL,
    card_id TEXT NOT NULL, port TEXT NOT NULL, created_at REAL NOT NULL, UNIQUE (digest, run_id, card_id, port));
CREATE INDEX IF NOT EXISTS artifacts_by_output ON artifacts (card_id, port, created_at);
CREATE TABLE IF NOT EXISTS state_snapshots (
    run_id TEXT NOT NULL, card_id TEXT NOT NULL, position INTEGER NOT NULL, "group" TEXT NOT NULL,
    version INTEGER NOT NULL, cache_key TEXT NOT NULL, members TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (run_id, "group", version));
CREATE INDEX IF NOT EXISTS state_snapshots_by_key ON state_snapshots (cache_key, "group", created_at);
CREATE TABLE IF NOT EXISTS card_progress (
    run_id TEXT NOT NULL, card_id TEXT NOT NULL, cache_key TEXT NOT NULL, step INTEGER NOT NULL,
    members TEXT NOT NULL, extra TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS card_progress_by_key ON card_progress (cache_key, created_at);
CREATE TABLE IF NOT EXISTS iteration_cards (
    run_id TEXT NOT NULL, path TEXT NOT NULL, card_type TEXT NOT NULL, depth INTEGER NOT NULL,
    executions INTEGER NOT NULL, skipped INTEGER NOT NULL, seconds REAL NOT NULL, status BLOB NOT NULL,
    times BLOB NOT NULL, indices BLOB NOT NULL, metric_names TEXT NOT NULL, metric_values BLOB NOT NULL,
    chunk INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, path, chunk));
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id TEXT PRIMARY KEY, name TEXT NOT NULL, pipeline TEXT NOT NULL, settings TEXT NOT NULL,
    options TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL);
CREATE TABLE IF NOT EXISTS sweep_variants (
    sweep_id TEXT NOT NULL, variant INTEGER NOT NULL, settings TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL,
    error TEXT, PRIMARY KEY (sweep_id, variant))
"""

#: Version 1 -> 2: iteration_cards gains its `chunk` column, part of its key, its rows kept as chunk 0.
ITERATION_CARDS_TO_VERSION_2 = """
CREATE TABLE iteration_cards_v2 (
    run_id TEXT NOT NULL, path TEXT NOT NULL, card_type TEXT NOT NULL, depth INTEGER NOT NULL,
    executions INTEGER NOT NULL, skipped INTEGER NOT NULL, seconds REAL NOT NULL, status BLOB NOT NULL,
    times BLOB NOT NULL, indices BLOB NOT NULL, metric_names TEXT NOT NULL, metric_values BLOB NOT NULL,
    chunk INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, path, chunk));
INSERT INTO iteration_cards_v2 SELECT *, 0 FROM iteration_cards ORDER BY rowid;
DROP TABLE iteration_cards;
ALTER TABLE iteration_cards_v2 RENAME TO iteration_cards
"""

#: Version 0 -> 1: the metrics table of a database made before, whose value column refused NULL (and so NaN),
#: rebuilt with its rows (CREATE TABLE IF NOT EXISTS leaves an existing table as it is).
METRICS_TO_VERSION_1 = """
CREATE TABLE metrics_v1 (
    run_id TEXT NOT NULL, card_id TEXT NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL, value REAL);
INSERT INTO metrics_v1 SELECT run_id, card_id, name, step, value FROM metrics ORDER BY rowid;
DROP TABLE metrics;
ALTER TABLE metrics_v1 RENAME TO metrics;
CREATE INDEX metrics_by_run ON metrics (run_id, name, step)
"""


Row = TypeVar("Row", CardExecution, Metric, ArtifactRecord, StateSnapshot)


class RunRecords:
    """The run records database (default: `runs.sqlite` in the default store root).

    Safe to share between threads and to open from several processes at once.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else default_store_root() / RECORDS_FILE
        self.root = self.path.parent
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []
        self._run_locks: dict[str, int] = {}  # run id -> the descriptor of its lock file, while it runs here
        try:
            self.read_only = _open_place(self.path)
            self._read_uri = _read_only_uri(self.path) if self.read_only else None
            if not self.read_only:
                self._upgrade()
        except (OSError, sqlite3.Error) as error:
            raise store_problem(self.root, error) from error

    def start_run(self, run_id: str | None = None, *, name: str, pipeline: Mapping[str, Any],
                  executor: str = "local", persist: str = "all", options: Mapping[str, Any] | None = None) -> str:
        """Record a new run as `running`, holding its lock until `finish_run`, and return its id (a new uuid if
        none is given)."""
        run_id = run_id or uuid.uuid4().hex
        row = (run_id, name, json.dumps(pipeline), executor, persist, time.time(), json.dumps(options or {}))
        self._hold_run_lock(run_id)  # before the row: a reader that sees the row finds the lock held
        try:
            with self._write() as db:  # encoded before: a large pipeline would hold the write lock meanwhile
                db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, 'running', NULL, ?, NULL, ?)", row)
        except BaseException:
            self._release_run_lock(run_id)
            raise
        return run_id

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record how a run ended: `succeeded`, `failed` or `cancelled`; then release the run's lock."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"a run ends as one of {', '.join(RUN_STATUSES[1:])}, not '{status}'")
        try:
            with self._write() as db:
                updated = db.execute("UPDATE runs SET status = ?, error = ?, ended_at = ? WHERE run_id = ?",
                                     (status, error, time.time(), run_id)).rowcount
        finally:  # after the status: a reader that can take the lock then reads how the run ended
            self._release_run_lock(run_id)
        if not updated:
            raise StoreError(f"there is no run '{run_id}' to finish")

    def add_card_executions(self, rows: Iterable[CardExecution | Mapping[str, Any]]) -> None:
        """Record card executions in one transaction; a card recorded again in the same run is replaced."""
        values = [(r.run_id, r.card_id, r.position, r.card_type, r.status, r.started_at, r.seconds, r.error,
                   int(r.cache_hit), r.cache_key, json.dumps(r.outputs), json.dumps(r.states_seen),
                   json.dumps(r.states_made)) for r in _rows(CardExecution, rows)]
        with self._write() as db:
            db.executemany(f"INSERT OR REPLACE INTO card_executions VALUES ({', '.join('?' * 13)})", values)

    def add_card_execution_rows(self, values: list[tuple]) -> None:
        """The fast path for a run's recorder: rows already in column order, JSON columns as text."""
        with self._write() as db:
            db.executemany(f"INSERT OR REPLACE INTO card_executions VALUES ({', '.join('?' * 13)})", values)

    def add_metric_rows(self, values: list[tuple]) -> None:
        """The fast path for a run's recorder: (run_id, card_id, name, step, value) tuples."""
        with self._write() as db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", values)

    def add_metrics(self, rows: Iterable[Metric | Mapping[str, Any]]) -> None:
        """Record metric values in one transaction."""
        values = [(m.run_id, m.card_id, m.name, m.step, float(m.value)) for m in _rows(Metric, rows)]
        with self._write() as db:
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", values)

    def add_artifacts(self, rows: Iterable[ArtifactRecord | Mapping[str, Any]]) -> None:
        """Record which run, card and port wrote each artifact, in one transaction."""
        values = [astuple(a) for a in _rows(ArtifactRecord, rows)]
        with self._write() as db:
            db.executemany("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)

    def add_state_snapshots(self, rows: Iterable[StateSnapshot | Mapping[str, Any]]) -> None:
        """Record training-state snapshots (their artifacts are stored already), in one transaction."""
        values = [(r.run_id, r.card_id, r.position, r.group, r.version, r.cache_key, json.dumps(r.members),
                   r.created_at) for r in _rows(StateSnapshot, rows)]
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO state_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest runs first."""
        rows = self._read("SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,))
        return [self._run(row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique id prefix."""
        rows = (self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
                or self._read("SELECT * FROM runs WHERE substr(run_id, 1, ?) = ? LIMIT 5", (len(run_id), run_id)))
        if len(rows) > 1:
            shown = ", ".join(row["run_id"] for row in rows)
            raise StoreError(f"run id prefix '{run_id}' matches several runs ({shown}, ...): give more of it")
        if not rows:
            raise StoreError(f"no run has the id or id prefix '{run_id}' (in {self.path})")
        return self._run(rows[0])

    def card_executions(self, run_id: str) -> list[CardExecution]:
        """A run's card executions in pipeline order."""
        rows = self._read("SELECT * FROM card_executions WHERE run_id = ? ORDER BY position, card_id", (run_id,))
        return [_execution(row) for row in rows]

    def execution_rows(self, run_id: str) -> list[ExecutionRow]:
        """A run's card executions in pipeline order, as `cardloop show RUN` and the editor's run view list them:
        the outputs column stays JSON text, and no CardExecution is built, so a long run reads quickly."""
        rows = self._read("SELECT position, card_id, card_type, status, seconds, error, cache_hit, outputs "
                          "FROM card_executions WHERE run_id = ? ORDER BY position, card_id", (run_id,), plain=True)
        return [ExecutionRow(*row[:6], bool(row[6]), row[7]) for row in rows]

    def card_execution(self, run_id: str, card_id: str) -> CardExecution | None:
        rows = self._read("SELECT * FROM card_executions WHERE run_id = ? AND card_id = ?", (run_id, card_id))
        return _execution(rows[0]) if rows else None

    def metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        """A run's metric values (only those called `name`, if given), by name and step; a NaN is recorded as
        NULL and comes back as NaN."""
        query = "SELECT * FROM metrics WHERE run_id = ?" + (" AND name = ?" if name is not None else "")
        params = (run_id, name) if name is not None else (run_id,)
        return [Metric(run_id, card_id, metric, step, math.nan if value is None else value) for
                run_id, card_id, metric, step, value in self._read(query + " ORDER BY name, step, rowid", params,
                                                                   plain=True)]

    def latest_artifact(self, card_id: str, port: str, cache_key: str | None = None) -> ArtifactRecord | None:
        """The newest artifact written for a card's output port; with `cache_key`, only by an execution
        with that key that succeeded (done or cached)."""
        query = "SELECT a.* FROM artifacts a WHERE a.card_id = ? AND a.port = ?"
        params: tuple[Any, ...] = (card_id, port)
        if cache_key is not None:
            query += (" AND EXISTS (SELECT 1 FROM card_executions e WHERE e.run_id = a.run_id"
                      " AND e.card_id = a.card_id AND e.cache_key = ? AND e.status IN ('done', 'cached'))")
            params += (cache_key,)
        rows = self._read(query + " ORDER BY a.created_at DESC, a.rowid DESC LIMIT 1", params)
        return ArtifactRecord(**dict(rows[0])) if rows else None

    def add_card_progress(self, run_id: str, card_id: str, cache_key: str, step: int, members: Mapping[str, Any],
                          extra: str) -> None:
        """Record a checkpoint taken inside a running card: its training state (snapshot members, artifacts
        stored already) after `step` of its own steps, and the card's `extra` (JSON text) to go on from."""
        with self._write() as db:
            db.execute("INSERT INTO card_progress VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (run_id, card_id, cache_key, step, json.dumps(members), extra, time.time()))

    def add_iteration_cards(self, rows: list[tuple]) -> None:
        """Record what the cards of a block's body did, one row per body card and chunk (IterationCards' columns;
        a chunk written again for the same run and path, after a resumed block, is replaced)."""
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO iteration_cards VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           rows)

    def iteration_cards(self, run_id: str, path: str | None = None) -> list[IterationCards]:
        """What each body card of the run's blocks did (or the one with this static path), in script order, its
        chunks joined."""
        query = "SELECT * FROM iteration_cards WHERE run_id = ?" + (" AND path = ?" if path else "")
        rows = self._read(query + " ORDER BY rowid", (run_id, path) if path else (run_id,))
        by_path: dict[str, list[IterationCards]] = {}
        for row in rows:
            by_path.setdefault(row[1], []).append(IterationCards(*row))
        return [IterationCards.joined(sorted(chunks, key=lambda c: c.chunk)) for chunks in by_path.values()]

    def run_that_made(self, run_id: str, card_id: str) -> str | None:
        """For a card that run `run_id` served from the store, the newest run that executed it (the same cache key,
        done); None when the run executed the card, or has no such card."""
        rows = self._read("SELECT e.run_id FROM card_executions c JOIN card_executions e ON e.cache_key = c.cache_key"
                          " WHERE c.run_id = ? AND c.card_id = ? AND c.status = 'cached' AND e.status = 'done'"
                          " ORDER BY e.started_at DESC, e.rowid DESC LIMIT 1", (run_id, card_id), plain=True)
        return rows[0][0] if rows else None

    def latest_card_progress(self, cache_key: str) -> tuple[int, dict[str, Any], str] | None:
        """The newest checkpoint inside a card with this cache key: (step, members, extra JSON text)."""
        rows = self._read("SELECT step, members, extra FROM card_progress WHERE cache_key = ? "
                          "ORDER BY created_at DESC, rowid DESC LIMIT 1", (cache_key,))
        return (rows[0][0], json.loads(rows[0][1]), rows[0][2]) if rows else None

    def last_progress_step(self, card_id: str) -> int | None:
        """The highest step of any checkpoint inside a card with this id (a block's last stored iteration)."""
        rows = self._read("SELECT max(step) FROM card_progress WHERE card_id = ?", (card_id,))
        return rows[0][0] if rows else None

    def cache_keys_with_progress(self) -> set[str]:
        """The cache keys of the cards that left checkpoints inside themselves."""
        return {row[0] for row in self._read("SELECT DISTINCT cache_key FROM card_progress", ())}

    def state_snapshots(self, run_id: str) -> list[StateSnapshot]:
        """A run's training-state snapshots in script order."""
        rows = self._read('SELECT * FROM state_snapshots WHERE run_id = ? ORDER BY position, "group"', (run_id,))
        return [_snapshot(row) for row in rows]

    def newest_outputs(self, cache_keys: Iterable[str]) -> dict[str, str]:
        """For each cache key, the outputs column (JSON text, undecoded) of the newest execution with that key
        that ran to the end. Executions served from cache are not read: each copies the outputs of one that ran."""
        found: dict[str, str] = {}
        keys = list(dict.fromkeys(cache_keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            found.update(self._read(f"SELECT cache_key, outputs FROM card_executions WHERE cache_key IN "
                                    f"({', '.join('?' * len(chunk))}) AND status = 'done' ORDER BY started_at, rowid",
                                    tuple(chunk), plain=True))
        return found

    def outputs_for_key(self, cache_key: str) -> list[str]:
        """The outputs column (JSON text) of every execution with this cache key that ran to the end, newest first."""
        rows = self._read("SELECT outputs FROM card_executions WHERE cache_key = ? AND status = 'done' "
                          "ORDER BY started_at DESC, rowid DESC", (cache_key,), plain=True)
        return [row[0] for row in rows]

    def snapshots_for_key(self, cache_key: str) -> list[StateSnapshot]:
        """Every snapshot of a state version made by a card with this cache key, newest first."""
        rows = self._read("SELECT * FROM state_snapshots WHERE cache_key = ? ORDER BY created_at DESC, rowid DESC",
                          (cache_key,))
        return [_snapshot(row) for row in rows]

    def latest_state_snapshot(self, cache_key: str, group: str) -> StateSnapshot | None:
        """The newest snapshot of `group` at the version made by a card with this cache key."""
        rows = self._read('SELECT * FROM state_snapshots WHERE cache_key = ? AND "group" = ? '
                          "ORDER BY created_at DESC, rowid DESC LIMIT 1", (cache_key, group))
        return _snapshot(rows[0]) if rows else None

    def start_sweep(self, sweep_id: str, *, name: str, pipeline: Mapping[str, Any], settings: Mapping[str, Any],
                    options: Mapping[str, Any], variants: list[dict[str, Any]]) -> None:
        """Record a new sweep as `running`, with its variants (each's settings) `pending`, holding its lock (as a
        run does) until `finish_sweep`: one whose process was killed reads `interrupted`."""
        self._hold_run_lock(sweep_id)
        try:
            with self._write() as db:
                db.execute("INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, 'running', ?, NULL)",
                           (sweep_id, name, json.dumps(pipeline), json.dumps(settings), json.dumps(options),
                            time.time()))
                db.executemany("INSERT INTO sweep_variants VALUES (?, ?, ?, NULL, 'pending', NULL)",
                               [(sweep_id, index, json.dumps(values)) for index, values in enumerate(variants)])
        except BaseException:
            self._release_run_lock(sweep_id)
            raise

    def finish_sweep_variant(self, sweep_id: str, variant: int, run_id: str | None, status: str,
                             error: str | None = None) -> None:
        """Record how a variant's run ended (its run id: None when it failed before it started)."""
        with self._write() as db:
            db.execute("UPDATE sweep_variants SET run_id = ?, status = ?, error = ? WHERE sweep_id = ? AND variant = ?",
                       (run_id, status, error, sweep_id, variant))

    def finish_sweep(self, sweep_id: str, status: str, options: Mapping[str, Any] | None = None) -> None:
        """Record how a sweep ended (`succeeded`: every variant did; `failed`: one or more did not; `cancelled`),
        and its options as they came to be (the id of the run of its shared cards)."""
        try:
            with self._write() as db:
                db.execute("UPDATE sweeps SET status = ?, ended_at = ?, options = coalesce(?, options) "
                           "WHERE sweep_id = ?",
                           (status, time.time(), json.dumps(options) if options is not None else None, sweep_id))
        finally:
            self._release_run_lock(sweep_id)

    def list_sweeps(self, limit: int = 20) -> list[SweepRecord]:
        """The newest sweeps first, with their variants."""
        rows = self._read("SELECT * FROM sweeps ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,))
        return [self._sweep(row) for row in rows]

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep with this id, or with this unique id prefix."""
        rows = (self._read("SELECT * FROM sweeps WHERE sweep_id = ?", (sweep_id,))
                or self._read("SELECT * FROM sweeps WHERE substr(sweep_id, 1, ?) = ? LIMIT 5",
                              (len(sweep_id), sweep_id)))
        if len(rows) > 1:
            shown = ", ".join(row["sweep_id"] for row in rows)
            raise StoreError(f"sweep id prefix '{sweep_id}' matches several sweeps ({shown}, ...): give more of it")
        if not rows:
            raise StoreError(f"no sweep has the id or id prefix '{sweep_id}' (in {self.path}); "
                             "`cardloop sweeps` lists them")
        return self._sweep(rows[0])

    def _sweep(self, row: sqlite3.Row) -> SweepRecord:
        data = {**dict(row), **{key: json.loads(row[key]) for key in ("pipeline", "settings", "options")}}
        if data["status"] == "running" and not self._still_running(data["sweep_id"], "sweeps", "sweep_id"):
            data["status"] = INTERRUPTED
        found = self._read("SELECT variant, settings, run_id, status, error FROM sweep_variants WHERE sweep_id = ? "
                           "ORDER BY variant", (data["sweep_id"],), plain=True)
        return SweepRecord(**data, variants=[SweepVariant(index, json.loads(settings), run_id, status, error)
                                             for index, settings, run_id, status, error in found])

    def close(self) -> None:
        """Close every connection this object opened in this process."""
        with self._lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _upgrade(self) -> None:
        """Bring the tables of a database made by an earlier version up to SCHEMA_VERSION, once."""
        if self._read("PRAGMA user_version", (), plain=True)[0][0] >= SCHEMA_VERSION:
            return
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # again, now that this holds the write lock
            if version >= SCHEMA_VERSION:
                return
            _execute_all(db, TABLES)
            if version < 1 and any(column[1] == "value" and column[3] for column in
                                   db.execute("PRAGMA table_info(metrics)").fetchall()):
                _execute_all(db, METRICS_TO_VERSION_1)
            if not any(column[1] == "chunk" for column in db.execute("PRAGMA table_info(iteration_cards)")):
                _execute_all(db, ITERATION_CARDS_TO_VERSION_2)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _run(self, row: sqlite3.Row) -> RunRecord:
        data = dict(row)
        if data["status"] == "running" and not self._still_running(data["run_id"]):
            data["status"] = INTERRUPTED
        return RunRecord(**{**data, "pipeline": json.loads(data["pipeline"]), "options": json.loads(data["options"])})

    def _lock_path(self, run_id: str) -> Path:
        return self.root / LOCKS_DIR / f"{run_id}.lock"

    def _hold_run_lock(self, run_id: str) -> None:
        try:
            self._lock_path(run_id).parent.mkdir(exist_ok=True)
            descriptor = os.open(self._lock_path(run_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new run id: nothing else holds it
        except OSError as error:
            raise store_problem(self.root, error) from error
        self._run_locks[run_id] = descriptor

    def _release_run_lock(self, run_id: str) -> None:
        descriptor = self._run_locks.pop(run_id, None)
        if descriptor is not None:
            with suppress(OSError):
                self._lock_path(run_id).unlink()
            os.close(descriptor)

    def _still_running(self, run_id: str, table: str = "runs", key: str = "run_id") -> bool:
        """Whether the process of a run (or sweep) marked `running` still holds its lock; if nothing does, whether
        it finished in the meantime (it records its status before it lets go). A run recorded before runs held
        locks has no lock file: marked running still, it was stopped."""
        if run_id in self._run_locks:
            return True
        try:
            descriptor = os.open(self._lock_path(run_id), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            held = False
        else:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
            finally:
                os.close(descriptor)  # which also lets go of the lock this took
        status = self._read(f"SELECT status FROM {table} WHERE {key} = ?", (run_id,), plain=True)[0][0]
        return held or status != "running"

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: connections must not cross processes)."""
        if getattr(self._local, "pid", None) != os.getpid():
            if self.read_only:
                connection = sqlite3.connect(self._read_uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                             isolation_level=None, check_same_thread=False)
            else:
                connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                             check_same_thread=False)
                _use_wal(connection)
                connection.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: never corrupt, commits cheap
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._local.connection, self._local.pid = connection, os.getpid()
            with self._lock:
                self._opened.append(connection)
        return self._local.connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its start, so it never fails half-way on BUSY.
        A failed one is rolled back (unless SQLite did already, as it does when the disk is full)."""
        try:
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise store_problem(self.root, error) from error
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException as exc:
            if connection.in_transaction:
                with suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            if _store_failure(exc):
                raise store_problem(self.root, exc) from exc
            raise

    def _read(self, query: str, params: tuple[Any, ...], plain: bool = False) -> list[Any]:
        """The rows of a query, as sqlite3.Row objects (`plain`: as tuples, which are cheaper)."""
        try:
            cursor = self._connection().cursor()
            if plain:
                cursor.row_factory = None
            return cursor.execute(query, params).fetchall()
        except sqlite3.Error as error:
            if not _store_failure(error):
                raise
            raise store_problem(self.root, error) from error


def existing_records(root: Path) -> RunRecords:
    """The run records of the store at `root`, to read them: StoreError if it has recorded no run yet, or if it
    cannot be used (a file, damaged records)."""
    database = root / RECORDS_FILE
    if not root.is_file() and not database.exists():
        raise StoreError(f"no runs recorded in store '{root}' (no {RECORDS_FILE}); run a pipeline first")
    return RunRecords(database)


def _rows(cls: type[Row], rows: Iterable[Row | Mapping[str, Any]]) -> list[Row]:
    """Rows as dataclasses; mappings are converted (and so validated)."""
    return [row if isinstance(row, cls) else cls(**row) for row in rows]


def _execution(row: sqlite3.Row) -> CardExecution:
    data = dict(row)
    decoded = {key: json.loads(data[key]) for key in ("outputs", "states_seen", "states_made")}
    return CardExecution(**{**data, **decoded, "cache_hit": bool(data["cache_hit"])})


def _snapshot(row: sqlite3.Row) -> StateSnapshot:
    data = dict(row)
    return StateSnapshot(**{**data, "members": json.loads(data["members"])})


def _store_failure(error: BaseException) -> bool:
    """Whether an error is the store's (its files, its disk), not a mistake in a query or a row."""
    return isinstance(error, sqlite3.Error) and not isinstance(
        error, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError))


def _execute_all(db: sqlite3.Connection, script: str) -> None:
    """Each statement of a script, in the caller's transaction (`executescript` would commit it first)."""
    for statement in script.split(";"):
        db.execute(statement)


def _open_place(path: Path) -> bool:
    """Check the place of a records database, make its folder and, if it has none, a new database; return
    whether the store is read-only. Raises StoreError for a store that is a file, a database path that is a
    folder and an empty database file."""
    root = path.parent
    if root.exists() and not root.is_dir():
        raise store_problem(root, NotADirectoryError(20, "Not a directory", str(root)))
    if path.is_dir():
        raise StoreError(f"the run records of store '{root}' are a folder ({path}), not a database file; move it "
                         "aside and cardloop starts a new history")
    if path.exists() and path.stat().st_size == 0:
        raise StoreError(f"the run records of store '{root}' are damaged: {path} is empty (0 bytes), so its history "
                         "is lost (a full disk, or a copy cut short?); restore it from a backup, or delete it to "
                         "start a new history")
    root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return True
    if not path.exists():
        _create(path)
    return False


def _create(path: Path) -> None:
    """Make a new database with every table, aside, and link it into place: another process that made one at
    the same moment wins, and this one is dropped. Where the file system has no hard links, it is renamed."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
    try:
        connection = sqlite3.connect(aside, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("BEGIN IMMEDIATE")
            _execute_all(connection, TABLES)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        finally:
            connection.close()  # the last connection: the WAL is checkpointed into the file and removed
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        except OSError:
            if not path.exists():
                os.rename(aside, path)
    finally:
        with suppress(FileNotFoundError):
            aside.unlink()


def _read_only_uri(path: Path) -> str:
    """The URI that reads a database in a store that cannot be written: `mode=ro`, which needs the WAL's index
    file (`-shm`) to exist or be creatable; else, when no WAL file holds anything the database lacks,
    `immutable=1`, which reads the file alone."""
    uri = path.resolve().as_uri()
    try:
        probe = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        try:
            probe.execute("PRAGMA schema_version")
        finally:
            probe.close()
        return f"{uri}?mode=ro"
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise
        return f"{uri}?immutable=1"


def _use_wal(connection: sqlite3.Connection) -> None:
    """Put the database in WAL mode (kept in the file, so only its first opener changes it). Switching can fail
    at once with "database is locked" when another process opens the same new database at the same moment:
    SQLite does not wait on its busy handler there. So this retries, up to the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
