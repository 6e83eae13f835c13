"""A warm worker process of the process executor (docs/design.md, Executors).

It imports torch (and torch.optim, whose first use costs a second) once, then runs one card at a time:
it reads the card's inputs from the artifact store, runs it (after recomputing the lineage of any input
that needs an autograd graph), writes the outputs and the new training-state snapshot back, and answers
with what it wrote. It keeps nothing between cards that the store does not hold: its caches hold decoded
artifacts by content hash, which are immutable. The messages are those of `engine/messages.py` (a CardTask in,
CardProgress reports and a CardOutcome out), as JSON over a pipe: nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from typing import Any, Callable

from cardloop.engine.messages import CardOutcome, CardProgress, CardTask, TaskFailure
from cardloop.engine.record_rows import metric_series, stored_summary
from cardloop.engine.resolve import StoredState, StoredValue
from cardloop.kinds import DATAFRAME, INFO, SCALAR, STATE_KINDS

SUMMARIZED = (INFO, SCALAR)
IMMUTABLE_CACHE = 64


def main(connection: Any, store_root: str, threads: int | None, card_files: list[str]) -> None:
    """The worker's loop: one task in, one outcome out (as JSON), until the pipe closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle; the worker ends with its pipe
    import torch
    import torch.optim  # noqa: F401  (first use loads torch._dynamo: pay it before the first card)

    from cardloop.cards.registry import default_registry, load_card_file

    if threads:
        torch.set_num_threads(threads)
    default_registry()
    for path in card_files:
        load_card_file(path)
    worker = Worker(store_root, lambda report: connection.send_bytes(json.dumps(report.to_json()).encode()))
    connection.send_bytes(b'{"ready": true}')
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):  # the run ended or its process died
            return
        task = json.loads(message)
        if task.get("op") == "stop":
            return
        connection.send_bytes(json.dumps(worker.handle(CardTask.from_json(task)).to_json()).encode())


def run_from_command_line(argv: list[str]) -> None:
    """`python -m cardloop.engine.worker FD STORE THREADS [CARD_FILE...]`, as the process executor starts it."""
    from multiprocessing.connection import Connection

    main(Connection(int(argv[0])), argv[1], int(argv[2]) or None, argv[3:])


class Worker:
    """Runs card tasks against one store; any executor's worker, whatever carries its messages."""

    def __init__(self, store_root: str, send_progress: Callable[[CardProgress], None] | None = None,
                 artifacts: str | None = None, open_records: Callable[[], Any] | None = None):
        """`send_progress`: where the reports sent before a task's outcome go (when its task asks for them): the
        target's progress (CardProgress), a block's body card events and progress (BodyCardEvent, BlockProgress).
        `artifacts`: the URL the store keeps its artifacts at, when the store folder here may not say it (a Ray
        actor on another node); by default what the store's config says. `open_records`: opens the run records
        a block task uses (a Ray actor on another node goes through the driver's node: engine/ray_records.py);
        by default the store folder's file."""
        from cardloop.engine.stored import StoreLoader
        from cardloop.store.artifacts import ArtifactStore

        self.artifacts = ArtifactStore(store_root, durable=False, artifacts=artifacts)
        self.loader = CachingLoader(StoreLoader(self.artifacts))
        self.plans: dict[str, Any] = {}
        self.send_progress = send_progress
        self.records: Any = None  # the store's run records, opened for the first block task
        self.open_records = open_records
        self.running: int | None = None  # the position of the target running now (reports are about it)

    def handle(self, task: CardTask, on_outcome: Callable[[int, CardOutcome], None] | None = None,
               on_started: Callable[[int], None] | None = None) -> CardOutcome:
        """The task's outcome (its last target's): a failure is an outcome too, never an exception. A task of
        several targets hands each target's outcome to `on_outcome(position, outcome)` as soon as it is known,
        and says when each starts (`on_started(position)`); it stops at the first that fails."""
        found: list[CardOutcome] = []

        def outcome(position: int, made: CardOutcome) -> None:
            found.append(made)
            if on_outcome is not None:
                on_outcome(position, made)

        outcomes = _Outcomes(self, task, outcome, on_started)
        try:
            self.run(task, outcomes)
        except Exception as exc:  # a bug, not a card's failure: keep the traceback for --debug
            outcomes.fail(CardOutcome(failure=TaskFailure(f"{type(exc).__name__}: {exc}",
                                                          traceback=traceback.format_exc())))
        return found[-1]

    def plan(self, task: CardTask) -> Any:
        key = task.plan_key
        if key not in self.plans:
            from cardloop.engine.plan import plan_pipeline
            from cardloop.pipeline.fileformat import pipeline_from_dict

            plan = plan_pipeline(pipeline_from_dict(task.pipeline))
            readers: dict[int, list[int]] = {}
            for pc in plan.cards:
                for binding in pc.bindings:
                    readers.setdefault(binding.slot, []).append(pc.position)
            self.plans = {key: (plan, readers)}
        return self.plans[key][0]

    def readers(self, task: CardTask) -> dict[int, list[int]]:
        """{value slot: the positions of the cards that read it} in the task's plan."""
        return self.plans[task.plan_key][1]

    def run(self, task: CardTask, outcomes: _Outcomes) -> None:
        from cardloop.engine.blocks import reset, serving
        from cardloop.engine.events import RunHooks
        from cardloop.engine.local import LocalExecutor
        from cardloop.errors import CardFailed

        plan = self.plan(task)
        slots: list[Any] = [None] * plan.slot_count
        block = self.block_listener(task, plan, slots) if task.block is not None else None
        outcomes.start(plan, slots, self.readers(task), block)
        hooks = RunHooks([outcomes] + ([block] if block is not None else []))
        token = serving(block.services(hooks, self.loader)) if block is not None else None
        # one target: its outputs stay in the slots (as the process executor always did); several: the local
        # executor's releases, or a long segment would hold every step's batch and graph
        executor = LocalExecutor(keep_outputs=len(task.all_targets()) == 1, stored_by_type=task.stored_by_type)
        try:
            executor.run(plan, hooks, slots, task.schedule(plan), self.loader)
        except CardFailed as failure:  # what a block's body cards did up to the failure is recorded too
            outcomes.fail(_failed(failure, block.stats if block is not None else ()), failure.changed_state)
        finally:
            if token is not None:
                reset(token)

    def block_listener(self, task: CardTask, plan: Any, slots: list[Any]) -> Any:
        """The listener that gives a block task its run services (engine/worker_blocks.py)."""
        from cardloop.engine.worker_blocks import BlockListener
        from cardloop.store.records import RunRecords

        if self.records is None:
            self.records = (self.open_records() if self.open_records is not None
                            else RunRecords(self.artifacts.root / "runs.sqlite"))
        return BlockListener(task.block, plan, slots, self.send_progress, self.artifacts, self.records,
                             self.write_outputs, task.keep_all)

    def write_outputs(self, pc: Any, outputs: dict[str, Any], keep_all: bool, only_state: bool = False,
                      live: frozenset[str] = frozenset()) -> dict:
        """Store a card's outputs (by port) as the task asks; what was stored, in CardOutcome.outputs's form
        (`only_state`: its training-state ports alone, for a card that was skipped; `live`: ports only cards of
        the same task read, recorded by their summaries as the local executor records them, not stored)."""
        from cardloop.store.codecs import CodecContext

        written = {}
        for port in pc.card_type.outputs:
            value = outputs.get(port.name)
            if port.kind in STATE_KINDS:
                written[port.name] = {"kind": port.kind, "digest": None, "state": pc.state_outputs.get(port.name)}
            elif only_state:
                continue
            elif value is None:
                written[port.name] = {"kind": port.kind, "digest": None, "summary": None}
            elif port.kind in SUMMARIZED and not keep_all:
                written[port.name] = {"kind": port.kind, "digest": None, "summary": plain_data(value)}
            elif port.name in live:
                written[port.name] = {"kind": port.kind, "digest": None, "summary": _live_summary(port, value)}
            else:
                ref = self.artifacts.save(port.kind, value, CodecContext())
                self.loader.remember(ref.digest, value)
                summary = plain_data(value) if port.kind in SUMMARIZED else \
                    stored_summary(port.kind, port.metric, value, _brief(port.kind, value, ref.summary))
                written[port.name] = {"kind": port.kind, "digest": ref.digest, "summary": summary,
                                      "codec": ref.codec, "size": ref.size}
        return written

    def write_snapshots(self, plan: Any, pc: Any, slots: list[Any], groups: Any = None) -> list[dict]:
        """Store the state versions the card made (of `groups`, default all), as CardOutcome.snapshots has them."""
        from cardloop.engine.snapshot import snapshot_group

        snapshots = []
        for group, version in pc.states_made.items():
            if groups is not None and group not in groups:
                continue
            snap = snapshot_group(plan, slots, group, version, pc)
            if snap is None:
                continue
            members = {}
            for member in snap.members:
                digest = self.artifacts.put(member.data, member.extension)
                members[member.name] = {**member.record(digest), "codec": member.codec, "size": len(member.data)}
            self.loader.remember_state(members, {m.name: slots[plan.states[m.name].slot] for m in snap.members
                                                 if m.name in plan.states})
            snapshots.append({"group": group, "version": version, "members": members})
        return snapshots


class CachingLoader:
    """A StoreLoader that keeps decoded immutable values by hash, and reuses the live training state it has
    just written when the next card asks for exactly that snapshot (equal bytes, so an equal state)."""

    def __init__(self, loader: Any):
        self.loader = loader
        self.values: dict[str, Any] = {}
        self.last_state: tuple[frozenset, dict[str, Any]] | None = None

    def remember(self, digest: str, value: Any) -> None:
        if len(self.values) >= IMMUTABLE_CACHE:
            self.values.pop(next(iter(self.values)))
        self.values[digest] = value

    def remember_state(self, members: dict, live: dict[str, Any]) -> None:
        self.last_state = (_digests(members), live)

    def value(self, stored: StoredValue) -> Any:
        if stored.digest is None:
            return stored.summary
        if stored.digest not in self.values:
            self.remember(stored.digest, self.loader.value(stored))
        return self.values[stored.digest]

    def state(self, stored: StoredState, restore_random: bool = True) -> dict[str, Any]:
        from cardloop.engine.snapshot import RNG_MEMBER

        if self.last_state is not None and self.last_state[0] == _digests(stored.members):
            if restore_random and RNG_MEMBER in stored.members:
                self.loader.restore_rng(stored.members[RNG_MEMBER]["digest"])
            return dict(self.last_state[1])
        self.last_state = None
        return self.loader.state(stored, restore_random)


def _failed(failure: Any, iteration_stats: list[dict] = ()) -> CardOutcome:
    return CardOutcome(failure=TaskFailure(failure.reason, failure.card_id, failure.card_type),
                       iteration_stats=list(iteration_stats))


def _digests(members: dict) -> frozenset:
    return frozenset((name, m["digest"]) for name, m in members.items())


def plain_data(value: Any) -> Any:
    """A value as JSON has it (arrays and tensors as lists, anything else JSON lacks as its text)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def _brief(kind: str, value: Any, summary: Any) -> Any:
    if kind == DATAFRAME:
        return {"rows": len(value), "columns": [str(c) for c in value.columns]}
    return summary


class _Outcomes:
    """The listener of a task's run that turns what its targets did into their outcomes, as each finishes.

    What a target made is written as far as cards outside the task need it (docs/ray.md, "What moves through the
    store"): a value output that a card outside the task reads, or that no card reads (a result), is stored;
    one that only cards of the same task read stays live, recorded by its summary, as the local executor records
    it under persist `checkpoint`. Training state is snapshotted after every change under persist `all`, after a
    task's last change of each state group (one target: after each), and otherwise at most every
    `checkpoint_seconds`, as the run's recorder does for the local executor."""

    def __init__(self, worker: Worker, task: CardTask, on_outcome: Callable[[int, CardOutcome], None],
                 on_started: Callable[[int], None] | None):
        self.worker, self.task, self.on_outcome, self.on_started = worker, task, on_outcome, on_started
        self.pending = list(task.all_targets())  # the targets without an outcome yet, in order
        self.first = self.pending[0]
        self.began = time.perf_counter()  # the first target's seconds include the task's loads and lineage
        self.started_at = (time.time(), self.began)

    def start(self, plan: Any, slots: list[Any], readers: dict[int, list[int]], block: Any) -> None:
        task = self.task
        self.plan, self.slots, self.block = plan, slots, block
        self.targets = {position: plan.cards[position] for position in self.pending}
        inside = set(task.positions)
        self.live = {} if task.keep_all else {
            position: frozenset(port for port, slot in pc.output_slots.items()
                                if readers.get(slot) and all(reader in inside for reader in readers[slot]))
            for position, pc in self.targets.items()}
        self.last_change = {group: position for position, pc in self.targets.items() for group in pc.states_made}
        self.every_change = task.keep_all or len(self.targets) == 1
        self.next_checkpoint = self.began + task.checkpoint_seconds
        self.unstored: dict[str, int] = {}  # state group -> the target that made its live, unstored version

    def card_started(self, pc: Any) -> None:
        if pc.position in self.targets:
            self.worker.running = pc.position
            if pc.position != self.first:
                self.started_at = (time.time(), time.perf_counter())
            if self.on_started is not None:
                self.on_started(pc.position)

    def card_progress(self, pc: Any, step: int, steps: int, metrics: dict[str, float]) -> None:
        if self.task.report_progress and pc.position in self.targets and self.worker.send_progress is not None:
            self.worker.send_progress(CardProgress(step, steps, metrics))

    def card_done(self, pc: Any, outputs: dict[str, Any], started: float, seconds: float) -> None:
        if pc.position not in self.targets:
            return
        stats, stopped = self._block_results()
        if stopped is not None:  # a part of its iterations: nothing to store
            self._done(pc, CardOutcome(iteration_stats=stats, stopped_at=stopped))
            return
        written = self.worker.write_outputs(pc, outputs, self.task.keep_all, live=self.live.get(pc.position, ()))
        self._done(pc, CardOutcome(outputs=written, snapshots=self._snapshots(pc), iteration_stats=stats))

    def card_skipped(self, pc: Any, reason: str, snapshots: Any = ()) -> None:
        """Its `when` (or a skipped card it needs) skipped it: the state it passed on unchanged is stored as a
        version like any other; its values were not made."""
        if pc.position in self.targets:
            self._done(pc, CardOutcome(outputs=self.worker.write_outputs(pc, {}, False, only_state=True),
                                       snapshots=self._snapshots(pc), skipped=reason))

    def fail(self, outcome: CardOutcome, changed_state: bool = True) -> None:
        """The task stopped at a failure: the outcome of the target it was running (or about to run), with the
        snapshots of the state the last finished targets left unstored, as the run's recorder takes them for the
        local executor, unless the failed card may have changed that state (`changed_state`, or a card that
        changes state). The live state the loader remembers may have changed since its snapshot: it is
        forgotten, and the next task loads the snapshot from the store."""
        if self.pending and self.unstored and not changed_state \
                and not self.targets[self.pending[0]].card_type.mutates_state:
            outcome = dataclasses.replace(outcome, snapshots=[
                snap for group, position in self.unstored.items()
                for snap in self.worker.write_snapshots(self.plan, self.targets[position], self.slots, [group])])
        self.worker.loader.last_state = None
        if self.pending:
            self.on_outcome(self.pending.pop(0), outcome)
            self.pending.clear()

    def _snapshots(self, pc: Any) -> list[dict]:
        now = time.perf_counter()
        if self.every_change or now >= self.next_checkpoint:
            if pc.states_made and not self.every_change:
                self.next_checkpoint = now + self.task.checkpoint_seconds
            groups = list(pc.states_made)
        else:
            groups = [group for group in pc.states_made if self.last_change[group] == pc.position]
        for group in pc.states_made:  # the state versions left unstored, for a failure after them (`fail`)
            if group in groups:
                self.unstored.pop(group, None)
            else:
                self.unstored[group] = pc.position
        return self.worker.write_snapshots(self.plan, pc, self.slots, groups) if groups else []

    def _block_results(self) -> tuple[list[dict], str | None]:
        """What the block that just finished left in its listener (statistics, where it stopped), taken."""
        if self.block is None:
            return [], None
        stats, stopped = self.block.stats, self.block.stopped
        self.block.stats, self.block.stopped = [], None
        return stats, stopped

    def _done(self, pc: Any, outcome: CardOutcome) -> None:
        wall, began = self.started_at
        self.pending.remove(pc.position)
        self.on_outcome(pc.position, dataclasses.replace(outcome, seconds=time.perf_counter() - began,
                                                         started=wall))


def _live_summary(port: Any, value: Any) -> Any:
    """The recorded summary of an output that stays live: what the local executor's recorder keeps of it."""
    if port.kind == DATAFRAME:
        return _brief(port.kind, value, None)
    if port.metric:
        return {"values": metric_series(value)}
    return None


if __name__ == "__main__":
    import sys

    run_from_command_line(sys.argv[1:])

