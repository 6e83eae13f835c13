"""A warm worker process of the process executor (docs/design.md, Executors).

It imports torch (and torch.optim, whose first use costs a second) once, then runs one card at a time:
it reads the card's inputs from the artifact store, runs it (after recomputing the lineage of any input
that needs an autograd graph), writes the outputs and the new training-state snapshot back, and answers
with what it wrote. It keeps nothing between cards that the store does not hold: its caches hold decoded
artifacts by content hash, which are immutable. The messages are those of `engine/messages.py` (a CardTask in,
CardProgress reports and a CardOutcome out), as JSON over a pipe: nothing is unpickled.
"""

from __future__ import annotations

import json
import time
import traceback
from typing import Any, Callable

from cardloop.engine.messages import CardOutcome, CardProgress, CardTask, TaskFailure
from cardloop.engine.record_rows import stored_summary
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
                 artifacts: str | None = None):
        """`send_progress`: where the reports sent before a task's outcome go (when its task asks for them): the
        target's progress (CardProgress), a block's body card events and progress (BodyCardEvent, BlockProgress).
        `artifacts`: the URL the store keeps its artifacts at, when the store folder here may not say it (a Ray
        actor on another node); by default what the store's config says."""
        from cardloop.engine.stored import StoreLoader
        from cardloop.store.artifacts import ArtifactStore

        self.artifacts = ArtifactStore(store_root, durable=False, artifacts=artifacts)
        self.loader = CachingLoader(StoreLoader(self.artifacts))
        self.plans: dict[str, Any] = {}
        self.send_progress = send_progress
        self.records: Any = None  # the store's run records, opened for the first block task

    def handle(self, task: CardTask) -> CardOutcome:
        """The task's outcome; a failure is an outcome too, never an exception."""
        from cardloop.errors import CardFailed

        try:
            return self.run(task)
        except CardFailed as failure:
            return _failed(failure)
        except Exception as exc:  # a bug, not a card's failure: keep the traceback for --debug
            return CardOutcome(failure=TaskFailure(f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()))

    def plan(self, task: CardTask) -> Any:
        key = task.plan_key
        if key not in self.plans:
            from cardloop.engine.plan import plan_pipeline
            from cardloop.pipeline.fileformat import pipeline_from_dict

            self.plans = {key: plan_pipeline(pipeline_from_dict(task.pipeline))}
        return self.plans[key]

    def run(self, task: CardTask) -> CardOutcome:
        from cardloop.engine.blocks import reset, serving
        from cardloop.engine.events import RunHooks
        from cardloop.engine.local import LocalExecutor
        from cardloop.errors import CardFailed

        plan = self.plan(task)
        target = plan.cards[task.target]
        slots: list[Any] = [None] * plan.slot_count
        started = time.perf_counter()
        relay = task.report_progress and self.send_progress is not None
        listeners: list[Any] = [_ProgressRelay(self.send_progress, target)] if relay else []
        skipped = _SkipListener(target)  # its `when`, or a skipped card it needs, may skip it
        listeners.append(skipped)
        block = self.block_listener(task, plan, slots) if task.block is not None else None
        if block is not None:
            listeners.append(block)
        hooks = RunHooks(listeners)
        token = serving(block.services(hooks, self.loader)) if block is not None else None
        executor = LocalExecutor(keep_outputs=True, stored_by_type={target.position: task.stored_by_type})
        try:
            executor.run(plan, hooks, slots, task.schedule(plan), self.loader)
        except CardFailed as failure:
            if block is None:
                raise
            return _failed(failure, block.stats)  # what the body cards did up to the failure is recorded too
        finally:
            if token is not None:
                reset(token)
        seconds = time.perf_counter() - started
        if block is not None and block.stopped is not None:  # a part of its iterations: nothing to store
            return CardOutcome(seconds, iteration_stats=block.stats, stopped_at=block.stopped)
        if skipped.reason is not None:  # the state it passed on unchanged is stored; its values were not made
            return CardOutcome(seconds, self.write_outputs(target, {}, False, only_state=True),
                               self.write_snapshots(plan, target, slots), skipped=skipped.reason)
        return CardOutcome(seconds, self.write_outputs(target, {p: slots[s] for p, s in target.output_slots.items()},
                                                       task.keep_all),
                           self.write_snapshots(plan, target, slots), iteration_stats=block.stats if block else [])

    def block_listener(self, task: CardTask, plan: Any, slots: list[Any]) -> Any:
        """The listener that gives a block task its run services (engine/worker_blocks.py)."""
        from cardloop.engine.worker_blocks import BlockListener
        from cardloop.store.records import RunRecords

        if self.records is None:
            self.records = RunRecords(self.artifacts.root / "runs.sqlite")
        return BlockListener(task.block, plan, slots, self.send_progress, self.artifacts, self.records,
                             self.write_outputs, task.keep_all)

    def write_outputs(self, pc: Any, outputs: dict[str, Any], keep_all: bool, only_state: bool = False) -> dict:
        """Store a card's outputs (by port) as the task asks; what was stored, in CardOutcome.outputs's form
        (`only_state`: its training-state ports alone, for a card that was skipped)."""
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
            else:
                ref = self.artifacts.save(port.kind, value, CodecContext())
                self.loader.remember(ref.digest, value)
                summary = plain_data(value) if port.kind in SUMMARIZED else \
                    stored_summary(port.kind, port.metric, value, _brief(port.kind, value, ref.summary))
                written[port.name] = {"kind": port.kind, "digest": ref.digest, "summary": summary,
                                      "codec": ref.codec, "size": ref.size}
        return written

    def write_snapshots(self, plan: Any, pc: Any, slots: list[Any]) -> list[dict]:
        from cardloop.engine.snapshot import snapshot_group

        snapshots = []
        for group, version in pc.states_made.items():
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


class _ProgressRelay:
    """Sends the target card's progress reports to the run's process while the card runs."""

    def __init__(self, send: Callable[[CardProgress], None], target: Any):
        self.send, self.target = send, target

    def card_progress(self, pc: Any, step: int, steps: int, metrics: dict[str, float]) -> None:
        if pc is self.target:
            self.send(CardProgress(step, steps, metrics))


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


class _SkipListener:
    """Notes why the task's target was skipped (its `when`), if it was."""

    def __init__(self, target: Any):
        self.target, self.reason = target, None

    def card_skipped(self, pc: Any, reason: str, snapshots: Any = ()) -> None:
        if pc is self.target:
            self.reason = reason


if __name__ == "__main__":
    import sys

    run_from_command_line(sys.argv[1:])

