"""The process executor: every card in a warm worker process, taking its inputs from the artifact store
and writing its outputs back, as the guide's cards ran in separate containers (docs/design.md, Executors).

Workers are spawned (never forked: CUDA forbids it) once per store, thread count and card files, and reused
by later runs in this process. For each card the executor works out, with the same scheduler as a whole
run, what the worker must load and which cards it must recompute first (the lineage of a loss, docs/design.md §4),
and sends it as a CardTask (engine/messages.py), the message any executor's worker takes.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from cardloop.engine.blocks import IterationStats, body_cards, current
from cardloop.engine.events import RunHooks, listens
from cardloop.engine.executors import ExecutorSetup
from cardloop.engine.messages import (
    BlockProgress,
    BlockRun,
    BodyCardEvent,
    CardOutcome,
    CardProgress,
    CardTask,
    report_from_json,
)
from cardloop.engine.persist import SUMMARIZED_KINDS
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.resolve import Schedule, StoredState, StoredValue, schedule
from cardloop.engine.when import gates, mark_skipped, skip_before_sending
from cardloop.errors import CardFailed, CardloopError
from cardloop.pipeline.blocks import BlockType


class WorkerProcess:
    """One worker: a fresh Python process (`python -m cardloop.engine.worker`, so never a fork and never a
    re-import of the caller's script) talking over a socket pair."""

    def __init__(self, store_root: Path, threads: int | None, card_files: list[str]):
        parent, child = socket.socketpair()
        command = [sys.executable, "-m", "cardloop.engine.worker", str(child.fileno()), str(store_root),
                   str(threads or 0), *card_files]
        self.process = subprocess.Popen(command, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        child.close()
        self.connection = Connection(parent.detach())
        self.ready = False

    def call(self, task: CardTask, on_report: Callable[[Any], None] | None = None) -> CardOutcome:
        """Send a task and wait for its outcome; `on_report` gets the reports that come before it (CardProgress,
        BodyCardEvent, BlockProgress: asked for with the task's `report_progress` and `block`)."""
        if not self.ready:
            self._receive()
            self.ready = True
        try:
            self.connection.send_bytes(json.dumps(task.to_json()).encode())
            answer = self._receive()
            while (report := report_from_json(answer)) is not None:
                if on_report is not None:
                    on_report(report)
                answer = self._receive()
            return CardOutcome.from_json(answer)
        except BaseException:  # interrupted mid-card: its answer would reach the next caller, so end this worker
            self.process.kill()
            self.process.wait()
            raise

    def _receive(self) -> dict:
        try:
            return json.loads(self.connection.recv_bytes())
        except (EOFError, OSError):
            raise CardloopError(f"the worker process died (exit code {self.process.poll()}); "
                                "run again to resume from the stored outputs") from None

    def stop(self) -> None:
        try:
            self.connection.send_bytes(b'{"op": "stop"}')
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


_workers: dict[tuple, WorkerProcess] = {}


def worker_for(store_root: Path, threads: int | None, card_files: list[str]) -> WorkerProcess:
    """A warm worker for this store (and where it keeps its artifacts, which the worker reads when it starts),
    thread count and card files, started on first use."""
    from cardloop.store.location import bound_artifacts

    key = (str(store_root.resolve()), bound_artifacts(store_root), threads, tuple(card_files))
    found = _workers.get(key)
    if found is None or found.process.poll() is not None:
        found = _workers[key] = WorkerProcess(store_root, threads, card_files)
    return found


@atexit.register
def stop_workers() -> None:
    for found in _workers.values():
        found.stop()
    _workers.clear()


class RunOutputsView:
    """The scheduler's view for one card: what this run has already written, then what earlier runs did."""

    def __init__(self, earlier: Any):
        self.earlier = earlier
        self.values: dict[tuple[int, str], StoredValue] = {}
        self.states: dict[tuple[str, int], StoredState] = {}

    def prior(self, pc: PlannedCard) -> Any:
        return self.earlier.prior(pc)

    def value(self, pc: PlannedCard, port: str) -> StoredValue | None:
        return self.values.get((pc.position, port)) or self.earlier.value(pc, port)

    def state(self, group: str, version: int, maker: PlannedCard) -> StoredState | None:
        return self.states.get((group, version)) or self.earlier.state(group, version, maker)

    def add(self, pc: PlannedCard, outcome: CardOutcome) -> None:
        """What a card's task stored: later cards load it from there."""
        for port, output in outcome.outputs.items():
            if output.get("digest"):
                self.values[(pc.position, port)] = StoredValue(output["kind"], output["digest"])
            elif output["kind"] in SUMMARIZED_KINDS and output.get("summary") is not None:
                self.values[(pc.position, port)] = StoredValue(output["kind"], None, output["summary"])
        for snap in outcome.snapshots:
            self.states[(snap["group"], snap["version"])] = StoredState(snap["members"])


def card_task(plan: Plan, available: Any, targets: list[PlannedCard], plan_key: str,
              stored_by_type: dict[int, dict[str, str]], keep_all: bool, report_progress: bool, pipeline: dict | None,
              block: BlockRun | None = None, checkpoint_seconds: float = 60.0) -> CardTask:
    """The task that runs `targets` (one card, or consecutive cards of a run) where only the store is shared: what
    to load from the store as `available` says, and which cards to recompute before them, from the same scheduler
    as a whole run. `stored_by_type`: the run's, by position (the targets' are sent)."""
    positions = [pc.position for pc in targets]
    context = schedule(plan, available, set(positions), with_skipped=False)
    return CardTask(plan_key, positions[-1], [c.position for c in context.run], context.value_loads,
                    context.state_loads, {p: stored_by_type[p] for p in positions if p in stored_by_type}, keep_all,
                    report_progress, pipeline, block, positions if len(positions) > 1 else [], checkpoint_seconds)


def block_run(services: Any, hooks: RunHooks) -> BlockRun | None:
    """A block card's settings as the run's services have them (engine/blocks.RunServices), and which of its
    events the run listens to; None outside a recorded run."""
    if services is None or services.run_id is None:
        return None
    return BlockRun(services.run_id, services.checkpoint_seconds, services.every_iteration, services.use_cache,
                    services.fresh_from, services.start_at, services.stop_at,
                    body_events=listens(hooks, "body_card_started") or listens(hooks, "body_card_stored"),
                    block_progress=listens(hooks, "block_progress"), stats_chunk=services.stats_chunk)


class _Reports:
    """Turns a worker's reports on the card it runs into the run's hook calls."""

    def __init__(self, hooks: RunHooks, pc: PlannedCard, body: dict[str, PlannedCard]):
        """`body`: a block's body cards by static path (engine/blocks.body_cards), for its body card events."""
        self.hooks, self.pc, self.body = hooks, pc, body

    def __call__(self, report: Any) -> None:
        if isinstance(report, CardProgress):
            self.hooks.card_progress(self.pc, report.step, report.steps, report.metrics)
        elif isinstance(report, BlockProgress):
            self.hooks.block_progress(self.pc, report.progress)
        elif isinstance(report, BodyCardEvent):
            body_pc = self.body[STATIC.sub("", report.path)]
            if report.status == "started":
                self.hooks.body_card_started(report.path, body_pc)
            else:
                self.hooks.body_card_stored(report.path, body_pc, report.status, report.seconds, report.outputs)


STATIC = re.compile(r"\[\d+\]")  # an iteration path's indices: removed, it is the static path


class ProcessExecutor:
    """Runs each scheduled card as a CardTask in a warm worker process (engine/messages.py).

    An executor whose worker lives elsewhere (engine/ray_executor.py) subclasses it: what its tasks carry and how
    their outcomes become the run's hooks is `CardWalk`, shared by both."""

    name = "process"

    def __init__(self, setup: ExecutorSetup):
        """`setup.stored_by_type`: {position: {port: why}} for the outputs of kind `any`, whose values the worker
        checks right after the card that makes them (`state_guard.guarded`)."""
        self.store_root, self.options, self.card_files = setup.store_root, setup.options, setup.card_files
        self.stored_by_type = setup.stored_by_type

    def run(self, plan: Plan, hooks: RunHooks, slots: list[Any], work: Schedule, loader: Any) -> list[Any]:
        walk = CardWalk(self, plan, hooks)
        worker = self.worker(plan, work)
        gated, skipped = gates(plan, work.run), set()  # skipped: the value slots of cards that were skipped
        for pc in work.run:
            gate = gated.get(pc.position)
            if gate is not None and skipped:
                reason = skip_before_sending(pc, gate, skipped)
                if reason is not None:  # it needs what a skipped card did not make: no task for it
                    mark_skipped(gate, skipped)
                    hooks.card_skipped(pc, reason)
                    continue
            task = walk.task([pc])
            hooks.card_started(pc)
            started = time.perf_counter()
            outcome = worker.call(task, walk.reports(pc))
            if walk.finish(pc, outcome, started, time.perf_counter() - started):
                mark_skipped(gate, skipped)
        return slots

    def worker(self, plan: Plan, work: Schedule) -> Any:
        """What runs this run's tasks: anything with `call(task, on_report) -> CardOutcome`."""
        return worker_for(self.store_root, self.options.threads, self.card_files)


class CardWalk:
    """What an executor whose cards run where only the store is shared keeps across a run's cards: the store's
    view of what this run wrote (for the next tasks), the run's settings for its tasks, and each card's outcome
    turned into the run's hooks. The process executor sends a task per card; the Ray executor consecutive cards in
    one task, whose outcomes come back one by one (engine/ray_executor.py)."""

    def __init__(self, executor: ProcessExecutor, plan: Plan, hooks: RunHooks):
        from cardloop.engine.stored import StoreAvailability
        from cardloop.store.artifacts import ArtifactStore
        from cardloop.store.records import RunRecords

        root, options = executor.store_root, executor.options
        self.plan, self.hooks, self.stored_by_type = plan, hooks, executor.stored_by_type
        self.view = RunOutputsView(StoreAvailability(plan, RunRecords(root / "runs.sqlite"), ArtifactStore(root)))
        self.pipeline = plan.pipeline.to_dict()
        self.plan_key = hashlib.sha256(json.dumps(self.pipeline, sort_keys=True).encode()).hexdigest()
        self.keep_all = options.persist.name == "all"
        self.checkpoint_seconds = options.persist.checkpoint_seconds
        self.reporting = listens(hooks, "card_progress")
        self.block = block_run(current(), hooks)
        self.sent_plan = False
        self._reports: dict[int, _Reports] = {}

    def task(self, targets: list[PlannedCard], with_pipeline: bool = False) -> CardTask:
        """The task of `targets`, from what the store and this run's earlier tasks hold; the pipeline goes with
        the run's first task (or with any, `with_pipeline`: for a worker that may not hold the plan)."""
        blocks = any(isinstance(pc.card_type, BlockType) for pc in targets)
        task = card_task(self.plan, self.view, targets, self.plan_key, self.stored_by_type, self.keep_all,
                         self.reporting, self.pipeline if with_pipeline or not self.sent_plan else None,
                         self.block if blocks else None, self.checkpoint_seconds)
        self.sent_plan = True
        return task

    def reports(self, pc: PlannedCard) -> _Reports:
        """What turns the reports of `pc`'s task into the run's hooks."""
        found = self._reports.get(pc.position)
        if found is None:
            block = self.block if isinstance(pc.card_type, BlockType) else None
            body = body_cards(pc.card_type.spec) if block is not None and block.body_events else {}
            found = self._reports[pc.position] = _Reports(self.hooks, pc, body)
        return found

    def finish(self, pc: PlannedCard, outcome: CardOutcome, started: float, seconds: float) -> bool:
        """Report a card's outcome to the run's hooks; raises CardFailed naming the card for a failure. Returns
        whether it was skipped."""
        hooks = self.hooks
        if outcome.stopped_at is not None:
            hooks.block_stopped(pc, outcome.stopped_at)
        if isinstance(pc.card_type, BlockType):
            hooks.block_stats(pc, [IterationStats.from_plain(stats) for stats in outcome.iteration_stats])
        if outcome.failure is not None:
            for snap in outcome.snapshots:  # what the cards before it left, stored after their own events
                maker = next(c for c in self.plan.cards if c.states_made.get(snap["group"]) == snap["version"])
                hooks.state_stored(maker, [snap])
            failed = outcome.failure
            failure = CardFailed(failed.card_id or pc.id, failed.card_type or pc.card.type, failed.reason)
            hooks.card_failed(pc, failure, started, seconds)
            raise failure
        self.view.add(pc, outcome)
        if outcome.skipped is not None:
            hooks.card_skipped(pc, outcome.skipped, outcome.snapshots)
            return True
        hooks.card_stored(pc, outcome.outputs, outcome.snapshots, started, seconds)
        return False
