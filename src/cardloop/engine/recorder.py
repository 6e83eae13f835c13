"""The run recorder: a run listener that writes records, metrics and kept outputs off the hot path.

The executor's thread only appends to a queue each card's `done` message (its position, timing and the
summaries of its outputs, never the batches, predictions or losses, which would stay alive with their autograd
graphs; what does not change while the run goes on is sent once, before the cards run), and encodes
training-state snapshots, which must be taken before the state changes again. A writer thread
wakes every FLUSH_SECONDS, takes what has gathered, writes artifacts and snapshots, and hands the rows to
the `record_rows` renderer: in the same thread for short runs, in a writer process (`record_writer`) for
runs of WRITER_PROCESS_CARDS cards or more, whose rendering and inserting would otherwise take the GIL from
the training loop. The writer thread is never woken per card: every wake-up would make the two threads
trade the GIL in the middle of a training step.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from typing import Any

from cardloop.engine.events import recorded_metric_rows
from cardloop.engine.persist import PersistPolicy
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.record_rows import (
    SUMMARY_KINDS,
    RowRenderer,
    metric_series,
    plain,
    row_plan,
    stored_summary,
    summarized,
    versions_json,
)
from cardloop.engine.snapshot import RECORDED_MEMBER, Snapshot, latest_versions, snapshot_group
from cardloop.errors import StoreError
from cardloop.kinds import DATAFRAME
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.codecs import CodecContext
from cardloop.store.records import RunRecords
from cardloop.store.root import store_problem

FLUSH_SECONDS = 0.5
WRITER_PROCESS_CARDS = 1000


class RunRecorder:
    """Records one run: card executions, metrics, kept outputs and state snapshots."""

    def __init__(self, plan: Plan, store: ArtifactStore, records: RunRecords, policy: PersistPolicy,
                 run_id: str, slots: list[Any], running: list[PlannedCard] | None = None):
        """`running`: the cards the run executes (default: all of the plan's); runs of WRITER_PROCESS_CARDS
        or more get a writer process."""
        self.plan, self.store, self.records, self.policy = plan, store, records, policy
        self.run_id, self.slots = run_id, slots
        running = plan.cards if running is None else running
        self.every_state_change = policy.snapshots_every_state_change()
        self.epoch_offset = time.time() - time.perf_counter()  # perf_counter reading -> seconds since the epoch
        self._summaries: dict[str, tuple] = {}  # by card type: its summarized ports, and how to summarize each
        self._stored_ports = self._outputs_to_store(plan, policy)
        self.last_position: int | None = None
        self.stopped_in: PlannedCard | None = None  # the card that failed or was interrupted, if one was
        self.stopped_at: dict[int, str] = {}  # top-level blocks stopped part-way (`--until` an iteration), by position
        # a checkpoint is due after a state-changing card that ends at or after this perf_counter reading (its
        # end, not its start: a long card, such as a training loop, that ends past it leaves a checkpoint)
        self.next_checkpoint = float("-inf") if self.every_state_change else \
            time.perf_counter() + policy.checkpoint_seconds
        # a checkpoint inside a long card (its context's `checkpoint`) is due at or after this reading, under
        # either policy: a snapshot after every one of a training loop's steps would cost more than the steps
        self.next_progress = time.perf_counter() + policy.checkpoint_seconds
        self.pending: deque[tuple] = deque()  # append and popleft are atomic: no lock on the hot path
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        if len(running) >= WRITER_PROCESS_CARDS:
            from cardloop.engine.record_writer import RecordWriterProcess, encode

            self.sink: Any = RecordWriterProcess(str(records.path), run_id)
            self._first: Any = encode(self._static_messages(running))  # pickled here, before the cards run
        else:
            self.sink = _InThread(records, run_id)
            self._first = self._static_messages(running)
        if policy.name == "all":  # every body card's outputs too: listened to only then (hooks ask who listens)
            self.body_card_finished = self._body_card_kept
            self.body_card_stored = self._body_card_stored
            self._body_ports: dict[str, tuple[str, ...]] = {}
        self.writer = threading.Thread(target=self._write_loop, name=f"cardloop-recorder-{run_id}", daemon=True)
        self.writer.start()

    @staticmethod
    def _static_messages(running: list[PlannedCard]) -> list[tuple]:
        """The `type` messages of the running cards' types and their `cards` message: everything a row holds
        that does not change while the run goes on, so that a `done` message carries only what does."""
        types = {pc.card_type.id: pc.card_type for pc in running}
        messages: list[tuple] = [("type", type_id, [(p.name, p.kind, p.metric) for p in card_type.outputs])
                                 for type_id, card_type in types.items()]
        messages.append(("cards", [(pc.position, pc.card.id, pc.card_type.id, pc.cache_key, pc.states_seen,
                                    pc.states_made, pc.state_outputs) for pc in running]))
        return messages

    @staticmethod
    def _outputs_to_store(plan: Plan, policy: PersistPolicy) -> dict[int, tuple[str, ...]]:
        """{position: output ports the policy writes as artifacts}, for the cards that have any: under `all`
        every value output, under `checkpoint` those of a stored kind that no card reads."""
        every = policy.name == "all"
        storable: dict[str, tuple[str, ...]] = {}  # by card type id
        read = set() if every else {binding.slot for pc in plan.cards for binding in pc.bindings}
        found = {}
        for pc in plan.cards:
            names = storable.get(pc.card_type.id)
            if names is None:
                names = storable[pc.card_type.id] = tuple(p.name for p in pc.card_type.outputs
                                                          if policy.keeps_value(p.kind, every))
            names = tuple(name for name in names if pc.output_slots[name] not in read)
            if names:
                found[pc.position] = names
        return found

    # --- hooks, on the executor's thread ---------------------------------------------------------------

    def block_stopped(self, pc: PlannedCard, path: str) -> None:
        self.stopped_at[pc.position] = path

    def card_done(self, pc: PlannedCard, outputs: dict[str, Any], started: float, seconds: float) -> None:
        if pc.position in self.stopped_at:
            self._stopped(pc, started + self.epoch_offset, seconds)
            return
        position = self.last_position = pc.position
        if started + seconds >= self.next_checkpoint and pc.states_made:
            self.pending.append(("snapshots", self._snapshot(position)))
            if not self.every_state_change:
                self.next_checkpoint = started + seconds + self.policy.checkpoint_seconds
        names, converters = self._summaries.get(pc.card_type.id) or self._summary_ports(pc)
        summaries = [outputs.get(name) for name in names] if names else ()
        if converters:  # a table is recorded by its shape, a metric series by its values: neither is kept
            summaries = [convert(v) if convert and v is not None else v for convert, v in zip(converters, summaries)]
        stored = self._stored_ports.get(position)
        if stored:
            self.pending.append(("stored_done", pc, started + self.epoch_offset, seconds, summaries,
                                 {name: outputs.get(name) for name in stored}))
        else:
            self.pending.append(("done", position, started + self.epoch_offset, seconds, summaries))

    def card_skipped(self, pc: PlannedCard, reason: str, snapshots: list[dict] = ()) -> None:
        """A card its `when` skipped (or that needed a skipped value): a `skipped` row saying why; the state it
        passes on unchanged is a version like any other, snapshotted when one is due (or as the worker process
        that skipped it stored it: `snapshots`)."""
        now = time.perf_counter()
        if snapshots:
            self.pending.append(("stored_snapshots", pc, snapshots))
        self.last_position = pc.position
        if pc.states_made:
            if now >= self.next_checkpoint:
                self.pending.append(("snapshots", self._snapshot(pc.position)))
                if not self.every_state_change:
                    self.next_checkpoint = now + self.policy.checkpoint_seconds
        self.pending.append(("failed", pc, reason, now + self.epoch_offset, 0.0, "skipped"))

    def card_checkpoint(self, pc: PlannedCard, step: int, extra: dict[str, Any]) -> None:
        """A long card offers its state after `step` of its own steps (its context's `checkpoint`): when one
        is due, encode the training state it works on, as it is now, and its `extra`, for the writer."""
        now = time.perf_counter()
        if now < self.next_progress:
            return
        self.next_progress = now + self.policy.checkpoint_seconds
        self.pending.append(("progress", pc, step, seen_snapshots(self.plan, self.slots, pc),
                             json.dumps(extra, default=plain)))

    def _summary_ports(self, pc: PlannedCard) -> tuple[tuple[str, ...], tuple]:
        """The card type's summarized ports, and how to turn each value into its summary (None: as it is;
        () when every value is recorded as it is)."""
        ports = [p for p in pc.card_type.outputs if summarized(p.kind, p.metric)]
        converters = tuple(_table_summary if p.kind == DATAFRAME else _series_summary if p.kind not in SUMMARY_KINDS
                           else None for p in ports)
        found = self._summaries[pc.card_type.id] = (tuple(p.name for p in ports),
                                                 converters if any(converters) else ())
        return found

    def _body_card_kept(self, path: str, pc: PlannedCard, status: str, seconds: float,
                        outputs: dict[str, Any] | None) -> None:
        """Under persist `all`: a body card's execution as a row of its own, named by its iteration path, with
        its value outputs written as artifacts (docs/blocks.md, Identity)."""
        if outputs is None:
            return
        stored = self._body_ports.get(pc.card_type.id)
        if stored is None:
            stored = self._body_ports[pc.card_type.id] = tuple(
                p.name for p in pc.card_type.outputs if self.policy.keeps_value(p.kind, True))
        here = self._execution(path, pc)
        names, converters = self._summaries.get(pc.card_type.id) or self._summary_ports(pc)
        summaries = [outputs.get(name) for name in names]
        if converters:
            summaries = [convert(v) if convert and v is not None else v for convert, v in zip(converters, summaries)]
        started = time.perf_counter() - seconds
        self.pending.append(("stored_done", here, started + self.epoch_offset, seconds, summaries,
                             {name: outputs.get(name) for name in stored}))

    def _body_card_stored(self, path: str, pc: PlannedCard, status: str, seconds: float,
                          recorded: dict[str, Any] | None) -> None:
        """Under persist `all`: a body card's execution that a worker process stored, as a row of its own."""
        if recorded is not None:
            self.pending.append(("stored", self._execution(path, pc), recorded, [], time.time() - seconds, seconds))

    def _execution(self, path: str, pc: PlannedCard) -> PlannedCard:
        """A body card's execution as a card of the run: its iteration path for its id, in its block's place."""
        block = self.plan.card(path.split("[", 1)[0])
        return dataclasses.replace(pc, card=dataclasses.replace(pc.card, id=path), cache_key=None,
                                   position=block.position if block is not None else pc.position)

    def block_checkpoint(self, pc: PlannedCard, key: str, step: int, extra: dict[str, Any],
                         carried: tuple[Snapshot, ...] = ()) -> None:
        """An iteration boundary of block `pc`: encode the state it works on now, and its `extra` and `carried`
        state, under `key`."""
        self.pending.append(("progress", pc, step, seen_snapshots(self.plan, self.slots, pc) + carried,
                             json.dumps(extra, default=plain), key))

    def block_stats(self, pc: PlannedCard, stats: list[Any]) -> None:
        """What the body cards of block `pc` did: one row per body card and chunk (engine/blocks.IterationStats)."""
        self.pending.append(("iteration_cards", iteration_rows(self.run_id, stats)))

    def card_stored(self, pc: PlannedCard, recorded: dict[str, Any], snapshots: list[dict], started: float,
                    seconds: float) -> None:
        if pc.position in self.stopped_at:
            self._stopped(pc, time.time() - seconds, seconds)
            return
        self.pending.append(("stored", pc, recorded, snapshots, time.time() - seconds, seconds))

    def _stopped(self, pc: PlannedCard, started_at: float, seconds: float) -> None:
        """A block that stopped part-way (`--until` an iteration): recorded `stopped`, never a cache hit."""
        self.stopped_in = pc
        self.pending.append(("failed", pc, f"stopped after {self.stopped_at[pc.position]}", started_at, seconds,
                             "stopped"))

    def state_stored(self, pc: PlannedCard, snapshots: list[dict]) -> None:
        self.pending.append(("stored_snapshots", pc, snapshots))

    def card_cached(self, pc: PlannedCard, recorded: dict[str, Any]) -> None:
        self.pending.append(("cached", pc, recorded, time.time()))

    def card_failed(self, pc: PlannedCard, error: BaseException, started: float, seconds: float) -> None:
        self.stopped_in = pc
        self.pending.append(("failed", pc, str(error), time.time() - seconds, seconds))

    def card_interrupted(self, pc: PlannedCard) -> None:
        self.stopped_in = pc

    def run_finished(self, status: str, error: BaseException | None) -> None:
        """Snapshot the final training state, drain the writers and close the run record. The final state is
        the one the last finished card left, unless the card the run stopped in may have changed it since
        (a state-changing card that failed or was interrupted part-way): that state is no version at all.
        A run whose records could not all be written is recorded as failed, with why if the store still takes
        that, and this raises StoreError saying so."""
        stopped_in = self.stopped_in
        changed_since = stopped_in is not None and (stopped_in.card_type.mutates_state
                                                    or getattr(error, "changed_state", False))
        if self.last_position is not None and not self.every_state_change and not changed_since:
            self.pending.append(("snapshots", self._snapshot(self.last_position)))
        self.stopping.set()
        self.writer.join()
        try:
            self.sink.close()
        except BaseException as exc:
            self.error = self.error or exc
        message = str(error) if error else None
        if self.error is not None:
            status, message = "failed", "; ".join(filter(None, (message, self._records_failed(self.error))))
        try:
            self.records.finish_run(self.run_id, status, message)
        except StoreError as exc:  # its lock is let go all the same: the run is shown as interrupted
            self.error = self.error or exc
        if self.error is not None:
            raise StoreError(f"run {self.run_id} failed: {self._records_failed(self.error)}") from self.error

    def _records_failed(self, error: BaseException) -> str:
        return f"its records could not all be written ({store_problem(self.records.root, error)})"

    def _snapshot(self, position: int) -> tuple[Snapshot, ...]:
        snapshots = (snapshot_group(self.plan, self.slots, group, version, pc)
                     for group, (version, pc) in latest_versions(self.plan, position).items())
        return tuple(snap for snap in snapshots if snap is not None)

    # --- writer thread ---------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            self.sink.write(self._first)
        except BaseException as exc:  # surfaced by run_finished
            self.error = exc
        self._first = None
        while True:
            stop = self.stopping.wait(FLUSH_SECONDS)
            items = [self.pending.popleft() for _ in range(len(self.pending))]
            try:
                self._flush(items)
            except BaseException as exc:  # surfaced by run_finished
                self.error = self.error or exc
            if stop:
                if self.pending:
                    continue
                return

    def _flush(self, items: list) -> None:
        if all(item[0] == "done" for item in items):  # the common case: the messages are ready to send
            if items:
                self.sink.write(items)
            return
        messages: list[tuple] = []
        artifacts: list[dict] = []
        snapshot_rows: list[dict] = []
        progress: list[tuple] = []
        for item in items:
            if item[0] == "done":
                messages.append(item)
            elif item[0] == "stored_done":
                messages.append(self._stored_done(item, artifacts))
            elif item[0] == "snapshots":
                snapshot_rows += self._write_snapshots(item[1], artifacts)
            elif item[0] == "progress":
                progress.append(self._write_progress(item, artifacts))
            elif item[0] == "iteration_cards":
                self.records.add_iteration_cards(item[1])
            elif item[0] == "stored_snapshots":
                snapshot_rows += self._stored_snapshots(item[1], item[2], artifacts)
            elif item[0] == "stored":
                _, pc, recorded, snapshots, started_at, seconds = item
                snapshot_rows += self._stored_snapshots(pc, snapshots, artifacts)
                for port, output in recorded.items():
                    if output.get("digest"):
                        artifacts.append(self._artifact_row(output["digest"], output["kind"], output.pop("codec"),
                                                            output.pop("size"), pc.id, port))
                messages.append(("row", self._execution_row(pc, "done", started_at, seconds, json.dumps(recorded)),
                                 recorded_metric_rows(pc, recorded)))
            elif item[0] == "cached":
                _, pc, recorded, started_at = item
                messages.append(("row", self._execution_row(pc, "cached", started_at, 0.0, json.dumps(recorded)),
                                 recorded_metric_rows(pc, recorded)))
            else:
                _, pc, message, started_at, seconds, *status = item
                messages.append(("row", self._execution_row(pc, status[0] if status else "failed", started_at, seconds,
                                                             "{}", message), []))
        if artifacts:
            self.records.add_artifacts(artifacts)
        if snapshot_rows:
            self.records.add_state_snapshots(snapshot_rows)
        for row in progress:  # after the artifacts they name
            self.records.add_card_progress(*row)
        if messages:
            self.sink.write(messages)

    def _stored_done(self, item: tuple, artifacts: list) -> tuple:
        """The finished row of a card that ran here and has outputs to store, which it writes as artifacts."""
        _, pc, started_at, seconds, summaries, stored = item
        card_type = pc.card_type
        plan = row_plan([(p.name, p.kind, p.metric) for p in card_type.outputs], pc.state_outputs, tuple(stored))
        values, metrics, summaries = [], [], iter(summaries)
        for port in card_type.outputs:
            is_summarized = summarized(port.kind, port.metric)
            value = next(summaries) if is_summarized else None
            if port.name in stored:
                values.append(self._store_value(pc, port, stored[port.name], artifacts))
                value = stored[port.name]
            elif is_summarized:
                values.append(value)
            if port.metric:
                metrics.extend((port.name, v) for v in metric_series(value))
        return ("row", self._execution_row(pc, "done", started_at, seconds, plan.render(values)), metrics)

    def _store_value(self, pc: PlannedCard, port: Any, value: Any, artifacts: list) -> str | None:
        """Write an output as an artifact; the rest of its JSON fragment after `"digest": `."""
        if value is None:
            return None
        ref = self.store.save(port.kind, value, CodecContext())
        artifacts.append(self._artifact_row(ref.digest, ref.kind, ref.codec, ref.size, pc.id, port.name))
        summary = stored_summary(port.kind, port.metric, value, ref.summary)
        return f"\"{ref.digest}\", \"summary\": {json.dumps(summary, default=plain)}}}"

    def _write_snapshots(self, snapshots: tuple[Snapshot, ...], artifacts: list) -> list[dict]:
        return [{"run_id": self.run_id, "position": snap.position, "card_id": snap.card_id, "group": snap.group,
                 "version": snap.version, "cache_key": snap.cache_key,
                 "members": store_members(self.store, self.run_id, snap, artifacts)} for snap in snapshots]

    def _write_progress(self, item: tuple, artifacts: list) -> tuple:
        """Store a checkpoint taken inside a card; the card_progress row to record once its artifacts are."""
        pc, step, snapshots, extra = item[1:5]
        return progress_row(self.store, self.run_id, pc.id, item[5] if len(item) > 5 else pc.cache_key, step,
                            snapshots, extra, artifacts)

    def _stored_snapshots(self, pc: PlannedCard, snapshots: list[dict], artifacts: list) -> list[dict]:
        """Rows for the snapshots a worker process wrote after `pc`."""
        rows = []
        for snap in snapshots:
            for name, member in snap["members"].items():
                artifacts.append(self._artifact_row(member["digest"], member["kind"], member["codec"],
                                                    member["size"], pc.id, name))
            rows.append({"run_id": self.run_id, "position": pc.position, "card_id": pc.id,
                         "group": snap["group"], "version": snap["version"], "cache_key": pc.cache_key,
                         "members": {n: {k: v for k, v in m.items() if k in RECORDED_MEMBER}
                                     for n, m in snap["members"].items()}})
        return rows

    def _artifact_row(self, digest: str, kind: str, codec: str, size: int, card_id: str, port: str) -> dict:
        return artifact_row(self.run_id, digest, kind, codec, size, card_id, port)

    def _execution_row(self, pc: PlannedCard, status: str, started_at: float, seconds: float,
                       outputs_json: str, error: str | None = None) -> tuple:
        return (self.run_id, pc.id, pc.position, pc.card.type, status, started_at, seconds, error,
                int(status == "cached"), pc.cache_key, outputs_json, versions_json(pc.states_seen),
                versions_json(pc.states_made))


def seen_snapshots(plan: Plan, slots: list[Any], pc: PlannedCard) -> tuple[Snapshot, ...]:
    """The training state card `pc` works on (the versions it sees), as it is now in `slots`, encoded."""
    return tuple(snap for group, version in pc.states_seen.items()
                 if (snap := snapshot_group(plan, slots, group, version, pc)) is not None)


def progress_row(store: ArtifactStore, run_id: str, card_id: str, key: str, step: int,
                 snapshots: tuple[Snapshot, ...], extra: str, artifacts: list) -> tuple:
    """Store a checkpoint's snapshots (their artifact rows appended to `artifacts`); the card_progress row to
    record once the artifacts are."""
    members = {snap.group: store_members(store, run_id, snap, artifacts) for snap in snapshots}
    return run_id, card_id, key, step, members, extra


def write_progress(store: ArtifactStore, records: RunRecords, run_id: str, card_id: str, key: str, step: int,
                   snapshots: tuple[Snapshot, ...], extra: str) -> None:
    """Store and record a checkpoint at once (a worker process's, which has no writer thread)."""
    artifacts: list[dict] = []
    row = progress_row(store, run_id, card_id, key, step, snapshots, extra, artifacts)
    records.add_artifacts(artifacts)
    records.add_card_progress(*row)


def store_members(store: ArtifactStore, run_id: str, snap: Snapshot, artifacts: list) -> dict[str, dict]:
    """Write a snapshot's encoded members as artifacts; {name: {kind, digest}}."""
    members = {}
    for member in snap.members:
        digest = store.put(member.data, member.extension)
        artifacts.append(artifact_row(run_id, digest, member.kind, member.codec, len(member.data), snap.card_id,
                                      member.name))
        members[member.name] = member.record(digest)
    return members


def artifact_row(run_id: str, digest: str, kind: str, codec: str, size: int, card_id: str, port: str) -> dict:
    return {"digest": digest, "kind": kind, "codec": codec, "size": size, "run_id": run_id, "card_id": card_id,
            "port": port}


def _table_summary(frame: Any) -> dict[str, Any]:
    return {"rows": len(frame), "columns": [str(c) for c in frame.columns]}


def _series_summary(value: Any) -> dict[str, list[float]]:
    return {"values": metric_series(value)}



class _InThread:
    """The writer for short runs: renders and inserts the rows in the recorder's writer thread."""

    def __init__(self, records: RunRecords, run_id: str):
        self.records, self.renderer = records, RowRenderer(run_id)

    def write(self, messages: list[tuple]) -> None:
        self.renderer.write(self.records, messages)

    def close(self) -> None:
        pass


def iteration_rows(run_id: str, stats: list[Any]) -> list[tuple]:
    """The iteration_cards rows of body cards' IterationStats (one chunk each)."""
    return [(run_id, s.path, s.card_type, s.depth, s.executions, s.executions - sum(s.status), sum(s.seconds),
             bytes(s.status), s.seconds.tobytes(), s.indices.tobytes(), json.dumps(list(s.metric_ports)),
             b"".join(values.tobytes() for values in s.metrics), s.chunk) for s in stats]
