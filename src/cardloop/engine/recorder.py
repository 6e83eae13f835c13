"""The run recorder: a run listener that writes records, metrics and kept outputs off the hot path.

The executor's thread only appends to a list (and encodes training-state snapshots, which must be taken
before the state changes again); a writer thread wakes every FLUSH_SECONDS, takes what has gathered, encodes
values, writes artifacts and inserts records in one batch. It is never woken per card: every wake-up would
make the two threads trade the GIL in the middle of a training step. Values are immutable, so encoding
them later is safe.
"""

from __future__ import annotations

import json
import threading
from collections import deque
import time
from typing import Any

from cardloop.engine.events import recorded_metrics
from cardloop.engine.persist import PersistPolicy
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.snapshot import Snapshot, latest_versions, snapshot_group
from cardloop.kinds import DATAFRAME, STATE_KINDS
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.codecs import CodecContext
from cardloop.store.records import RunRecords
from cardloop.store.record_types import Metric

FLUSH_SECONDS = 0.5


class RunRecorder:
    """Records one run: card executions, metrics, kept outputs and state snapshots."""

    def __init__(self, plan: Plan, store: ArtifactStore, records: RunRecords, policy: PersistPolicy,
                 run_id: str, slots: list[Any]):
        self.plan, self.store, self.records, self.policy = plan, store, records, policy
        self.run_id, self.slots = run_id, slots
        self.consumed = plan.consumers()
        self.metric_steps: dict[str, int] = {}
        self._fragments: dict[tuple, tuple] = {}
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

    def card_stored(self, pc: PlannedCard, recorded: dict[str, Any], snapshots: list[dict], started: float,
                    seconds: float) -> None:
        self.pending.append(("stored", pc, recorded, snapshots, time.time() - seconds, seconds))

    def card_cached(self, pc: PlannedCard, recorded: dict[str, Any]) -> None:
        self.pending.append(("cached", pc, recorded, time.time()))

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
        snapshots = (snapshot_group(self.plan, self.slots, group, version, pc)
                     for group, (version, pc) in latest_versions(self.plan, position).items())
        return tuple(snap for snap in snapshots if snap is not None)

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
            elif item[0] == "stored":
                _, pc, recorded, snapshots, started_at, seconds = item
                for snap in snapshots:
                    for name, member in snap["members"].items():
                        artifacts.append(self._artifact_row(member["digest"], member["kind"], member["codec"],
                                                            member["size"], pc.id, name))
                    snapshot_rows.append({"run_id": self.run_id, "position": pc.position, "card_id": pc.id,
                                          "group": snap["group"], "version": snap["version"],
                                          "cache_key": pc.cache_key,
                                          "members": {n: {"kind": m["kind"], "digest": m["digest"]}
                                                      for n, m in snap["members"].items()}})
                for port, output in recorded.items():
                    if output.get("digest"):
                        artifacts.append(self._artifact_row(output["digest"], output["kind"], output.pop("codec"),
                                                            output.pop("size"), pc.id, port))
                executions.append(self._execution_row(pc, "done", started_at, seconds, json.dumps(recorded), None))
                for name, value in recorded_metrics(pc, recorded).items():
                    metrics.append(self._metric(pc, name, value))
            elif item[0] == "cached":
                _, pc, recorded, started_at = item
                row = self._execution_row(pc, "cached", started_at, 0.0, json.dumps(recorded), None)
                executions.append(row[:8] + (1,) + row[9:])
                for name, value in recorded_metrics(pc, recorded).items():
                    metrics.append(self._metric(pc, name, value))
            elif item[0] == "failed":
                _, pc, message, started_at, seconds = item
                executions.append(self._execution_row(pc, "failed", started_at, seconds, "{}", message))
            else:
                _, pc, outputs, started_at, seconds, snapshots = item
                if snapshots:
                    snapshot_rows += self._write_snapshots(snapshots, artifacts)
                kept = self._outputs_json(pc, outputs, artifacts)
                executions.append(self._execution_row(pc, "done", started_at, seconds, kept, None))
                for port in self._metric_ports(pc):
                    value = outputs.get(port)
                    if value is not None:
                        metrics.append(self._metric(pc, port, value))
        if artifacts:
            self.records.add_artifacts(artifacts)
        if snapshot_rows:
            self.records.add_state_snapshots(snapshot_rows)
        if executions:
            self.records.add_card_execution_rows(executions)
        if metrics:
            self.records.add_metrics(metrics)

    def _metric(self, pc: PlannedCard, name: str, value: Any) -> Metric:
        step = self.metric_steps.get(name, 0)
        self.metric_steps[name] = step + 1
        return Metric(self.run_id, pc.id, name, step, float(value))

    def _metric_ports(self, pc: PlannedCard) -> tuple[str, ...]:
        return self._port_plan(pc)[0]

    def _port_plan(self, pc: PlannedCard) -> tuple:
        """A card's metric ports and, per output port, a finished JSON fragment or how to make one.
        Cards of one type wired alike share it, so it is worked out once per kind of step, not per card."""
        consumed = tuple(self.consumed.get(slot, 0) > 0 for slot in pc.output_slots.values())
        key = (pc.card.type, tuple(pc.state_outputs.items()), consumed)
        known = self._fragments.get(key)
        if known is None:
            ports = []
            for port, is_read in zip(pc.card_type.outputs, consumed):
                head = f"{json.dumps(port.name)}: {{\"kind\": {json.dumps(port.kind)}, \"digest\": "
                if port.kind in STATE_KINDS:
                    state = json.dumps(pc.state_outputs.get(port.name))
                    ports.append((port, "fixed", head + f"null, \"state\": {state}}}"))
                elif self.policy.keeps_value(port.kind, is_read):
                    ports.append((port, "store", head))
                elif port.kind in ("info", "scalar"):
                    ports.append((port, "summary", head + "null, \"summary\": "))
                elif port.kind == DATAFRAME:
                    ports.append((port, "table", head + "null, \"summary\": "))
                else:
                    ports.append((port, "fixed", head + "null, \"summary\": null}"))
            known = self._fragments[key] = (tuple(p.name for p in pc.card_type.outputs if p.metric), tuple(ports))
        return known

    def _outputs_json(self, pc: PlannedCard, outputs: dict[str, Any], artifacts: list) -> str:
        """The card's outputs column, built from fragments: one json.dumps per summarized value."""
        parts = []
        for port, how, text in self._port_plan(pc)[1]:
            if how == "fixed":
                parts.append(text)
                continue
            value = outputs.get(port.name)
            if value is None:
                parts.append(text + "null" + ("}" if how == "summary" else ", \"summary\": null}"))
            elif how == "summary":
                parts.append(text + json.dumps(value, default=_plain) + "}")
            elif how == "table":
                parts.append(text + json.dumps({"rows": len(value), "columns": [str(c) for c in value.columns]}) + "}")
            else:
                ref = self.store.save(port.kind, value, CodecContext())
                artifacts.append(self._artifact_row(ref.digest, ref.kind, ref.codec, ref.size, pc.id, port.name))
                parts.append(text + f"\"{ref.digest}\", \"summary\": {json.dumps(ref.summary, default=_plain)}}}")
        return "{" + ", ".join(parts) + "}"

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

    def _execution_row(self, pc: PlannedCard, status: str, started_at: float, seconds: float,
                       outputs_json: str, error: str | None) -> tuple:
        return (self.run_id, pc.id, pc.position, pc.card.type, status, started_at, seconds, error, 0,
                pc.cache_key, outputs_json, _versions_json(pc.states_seen), _versions_json(pc.states_made))


def _versions_json(versions: dict[str, int]) -> str:
    """{group: version} as JSON; group names are card ids and port names, which need no escaping."""
    return "{" + ", ".join(f'"{group}": {version}' for group, version in versions.items()) + "}"


def _plain(value: Any) -> Any:
    """json.dumps fallback for numpy and torch numbers and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")
