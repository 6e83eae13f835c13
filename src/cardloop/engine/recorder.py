"""The run recorder: a run listener that writes records, metrics and kept outputs off the hot path.

The executor's thread only appends to a list (and encodes training-state snapshots, which must be taken
before the state changes again); a writer thread wakes every FLUSH_SECONDS, takes what has gathered, encodes
values, writes artifacts and inserts records in one batch. It is never woken per card: every wake-up would
make the two threads trade the GIL in the middle of a training step. Values are immutable, so encoding
them later is safe.
"""

from __future__ import annotations

import threading
from collections import deque
import time
from typing import Any

from cardloop.engine.events import metric_values
from cardloop.engine.persist import PersistPolicy
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.snapshot import Snapshot, latest_versions, snapshot_group
from cardloop.kinds import STATE_KINDS
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.codecs import CodecContext
from cardloop.store.json_codecs import to_jsonable
from cardloop.store.records import RunRecords

FLUSH_SECONDS = 0.5


class RunRecorder:
    """Records one run: card executions, metrics, kept outputs and state snapshots."""

    def __init__(self, plan: Plan, store: ArtifactStore, records: RunRecords, policy: PersistPolicy,
                 run_id: str, slots: list[Any]):
        self.plan, self.store, self.records, self.policy = plan, store, records, policy
        self.run_id, self.slots = run_id, slots
        self.consumed = plan.consumers()
        self.metric_steps: dict[str, int] = {}
        self.last_position: int | None = None
        self.last_checkpoint = time.monotonic()
        self.pending: deque[tuple] = deque()  # append and popleft are atomic: no lock on the hot path
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.writer = threading.Thread(target=self._write_loop, name=f"cardloop-recorder-{run_id}", daemon=True)
        self.writer.start()

    # --- hooks, on the executor's thread ---------------------------------------------------------------

    def card_done(self, pc: PlannedCard, outputs: dict[str, Any], started: float, seconds: float) -> None:
        self.last_position = pc.position
        snapshots = ()
        if pc.states_made and (self.policy.snapshots_every_state_change() or self._checkpoint_due()):
            snapshots = self._snapshot(pc.position)
        self.pending.append(("done", pc, outputs, time.time() - seconds, seconds, snapshots))

    def card_failed(self, pc: PlannedCard, error: BaseException, started: float, seconds: float) -> None:
        self.pending.append(("failed", pc, str(error), time.time() - seconds, seconds))

    def run_finished(self, status: str, error: BaseException | None) -> None:
        """Snapshot the final training state, drain the writer and close the run record."""
        if self.last_position is not None and not self.policy.snapshots_every_state_change():
            self.pending.append(("snapshots", self._snapshot(self.last_position)))
        self.stopping.set()
        self.writer.join()
        self.records.finish_run(self.run_id, status, str(error) if error else None)
        if self.error is not None:
            raise self.error

    def _checkpoint_due(self) -> bool:
        now = time.monotonic()
        if now - self.last_checkpoint < self.policy.checkpoint_seconds:
            return False
        self.last_checkpoint = now
        return True

    def _snapshot(self, position: int) -> tuple[Snapshot, ...]:
        return tuple(snapshot_group(self.plan, self.slots, group, version, pc)
                     for group, (version, pc) in latest_versions(self.plan, position).items())

    # --- writer thread ---------------------------------------------------------------------------------

    def _write_loop(self) -> None:
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
        executions, metrics, artifacts, snapshot_rows = [], [], [], []
        for item in items:
            if item[0] == "snapshots":
                snapshot_rows += self._write_snapshots(item[1], artifacts)
            elif item[0] == "failed":
                _, pc, message, started_at, seconds = item
                executions.append(self._execution(pc, "failed", started_at, seconds, {}, message))
            else:
                _, pc, outputs, started_at, seconds, snapshots = item
                snapshot_rows += self._write_snapshots(snapshots, artifacts)
                kept = self._write_outputs(pc, outputs, artifacts)
                executions.append(self._execution(pc, "done", started_at, seconds, kept, None))
                for name, value in metric_values(pc, outputs).items():
                    step = self.metric_steps.get(name, 0)
                    self.metric_steps[name] = step + 1
                    metrics.append({"run_id": self.run_id, "card_id": pc.id, "name": name, "step": step,
                                    "value": value})
        if artifacts:
            self.records.add_artifacts(artifacts)
        if snapshot_rows:
            self.records.add_state_snapshots(snapshot_rows)
        if executions:
            self.records.add_card_executions(executions)
        if metrics:
            self.records.add_metrics(metrics)

    def _write_outputs(self, pc: PlannedCard, outputs: dict[str, Any], artifacts: list) -> dict[str, dict]:
        kept: dict[str, dict] = {}
        for port in pc.card_type.outputs:
            value = outputs.get(port.name)
            if port.kind in STATE_KINDS:
                kept[port.name] = {"kind": port.kind, "digest": None, "state": pc.state_outputs.get(port.name)}
                continue
            if value is None:
                kept[port.name] = {"kind": port.kind, "digest": None, "summary": None}
                continue
            consumed = self.consumed.get(pc.output_slots[port.name], 0) > 0
            if self.policy.keeps_value(port.kind, consumed):
                ref = self.store.save(port.kind, value, CodecContext())
                artifacts.append(self._artifact_row(ref.digest, ref.kind, ref.codec, ref.size, pc.id, port.name))
                kept[port.name] = {"kind": port.kind, "digest": ref.digest, "summary": ref.summary}
            else:
                kept[port.name] = {"kind": port.kind, "digest": None, "summary": brief_summary(port.kind, value)}
        return kept

    def _write_snapshots(self, snapshots: tuple[Snapshot, ...], artifacts: list) -> list[dict]:
        rows = []
        for snap in snapshots:
            members = {}
            for member in snap.members:
                digest = self.store.put(member.data, member.extension)
                artifacts.append(self._artifact_row(digest, member.kind, member.codec, len(member.data),
                                                    snap.card_id, member.name))
                members[member.name] = {"kind": member.kind, "digest": digest}
            rows.append({"run_id": self.run_id, "position": snap.position, "card_id": snap.card_id,
                         "group": snap.group, "version": snap.version, "cache_key": snap.cache_key,
                         "members": members})
        return rows

    def _artifact_row(self, digest: str, kind: str, codec: str, size: int, card_id: str, port: str) -> dict:
        return {"digest": digest, "kind": kind, "codec": codec, "size": size, "run_id": self.run_id,
                "card_id": card_id, "port": port}

    def _execution(self, pc: PlannedCard, status: str, started_at: float, seconds: float,
                   outputs: dict, error: str | None) -> dict:
        return {"run_id": self.run_id, "card_id": pc.id, "position": pc.position, "card_type": pc.card.type,
                "status": status, "started_at": started_at, "seconds": seconds, "error": error,
                "cache_hit": False, "cache_key": pc.cache_key, "outputs": outputs,
                "states_seen": pc.states_seen, "states_made": pc.states_made}


def brief_summary(kind: str, value: Any) -> Any:
    """A cheap summary of an output that is not kept: infos and scalars whole, tensors by shape."""
    if kind in ("info", "scalar"):
        return to_jsonable(value, kind)
    for attr in ("X", "y"):
        if hasattr(value, attr):
            return {name: {"shape": list(getattr(value, name).shape)} for name in ("X", "y")}
    shape = getattr(value, "shape", None)
    return {"shape": list(shape), "dtype": str(value.dtype)} if shape is not None else None
