"""The messages between an executor that runs cards elsewhere and the worker that runs them (docs/design.md,
Executors): a card task out, progress reports and the task's outcome back.

They hold plain data only (str, int, float, bool, None, lists, dicts, and the store's StoredValue and
StoredState, which hold the same), never a live object: they cross a process or machine boundary. The process
executor sends them as JSON over a pipe (`to_json` / `from_json`: nothing is unpickled); an executor whose
transport pickles (Ray) can send the objects as they are. Torch-free.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cardloop.engine.plan import Plan
from cardloop.engine.resolve import Schedule, StoredState, StoredValue

#: A state snapshot to load before a card: (state group, version, where the store holds it), as in Schedule.
StateLoad = tuple[str, int, StoredState]


@dataclass(frozen=True)
class CardTask:
    """Run one card of a plan where the store is at hand (or several, `targets`), and store what it makes.

    The worker rebuilds the plan from the pipeline, loads what the task says from the store, executes
    `positions` (the target last), writes the targets' outputs and the training state they made back to the store
    as far as cards outside the task need them (`Worker.run`), and answers with a CardOutcome per target.
    """

    #: the pipeline's content hash: the worker keeps the plan it made for it across the tasks of a run
    plan_key: str
    #: the card to run: its position in the plan
    target: int
    #: the cards to execute, in script order, ending with the target: before it, those that remake an input it
    #: needs with its autograd graph (the lineage of a loss, docs/design.md §4)
    positions: list[int]
    #: slot -> the stored value to put there before the first card that reads it
    value_loads: dict[int, StoredValue] = field(default_factory=dict)
    #: position -> the training-state snapshots to load before that card
    state_loads: dict[int, list[StateLoad]] = field(default_factory=dict)
    #: {target's position: {output of kind `any` that the run stores: why}} (checked by type as the card returns
    #: them, `state_guard.guarded`)
    stored_by_type: dict[int, dict[str, str]] = field(default_factory=dict)
    #: persist 'all': infos and scalars are stored as artifacts too, not only summarized in the answer
    keep_all: bool = False
    #: send the target's progress reports (CardProgress) while it runs, before the outcome
    report_progress: bool = False
    #: the pipeline file's dict, when the worker may not hold the plan for `plan_key` (a run's first task)
    pipeline: dict[str, Any] | None = None
    #: when the target is a block: how the run has it run (its RunServices' settings), None for any other card
    block: BlockRun | None = None
    #: the cards whose outcomes are reported, in script order, the last being `target` (empty: the target alone):
    #: consecutive cards of a run sent in one task (the Ray executor's segments, docs/ray.md)
    targets: list[int] = field(default_factory=list)
    #: persist `checkpoint`: the training state of a task of several targets is snapshotted at most this often
    checkpoint_seconds: float = 60.0

    def all_targets(self) -> list[int]:
        return self.targets or [self.target]

    def schedule(self, plan: Plan) -> Schedule:
        """What the worker executes and loads, as a Schedule of the plan made from the pipeline."""
        return Schedule(run=[plan.cards[p] for p in self.positions], skipped=[],
                        value_loads=dict(self.value_loads), state_loads=dict(self.state_loads))

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "op": "run", "plan_key": self.plan_key, "target": self.target, "positions": self.positions,
            "value_loads": {slot: [v.kind, v.digest, v.summary] for slot, v in self.value_loads.items()},
            "state_loads": {p: [[g, v, s.members] for g, v, s in loads] for p, loads in self.state_loads.items()},
            "stored_by_type": self.stored_by_type, "keep_all": self.keep_all, "progress": self.report_progress,
            "targets": self.targets, "checkpoint_seconds": self.checkpoint_seconds}
        if self.pipeline is not None:
            found["pipeline"] = self.pipeline
        if self.block is not None:
            found["block"] = self.block.to_json()
        return found

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardTask:
        return cls(plan_key=data["plan_key"], target=data["target"], positions=list(data["positions"]),
                   value_loads={int(slot): StoredValue(*value) for slot, value in data["value_loads"].items()},
                   state_loads={int(p): [(g, v, StoredState(m)) for g, v, m in loads]
                                for p, loads in data["state_loads"].items()},
                   stored_by_type={int(p): dict(ports) for p, ports in data["stored_by_type"].items()},
                   keep_all=data["keep_all"], report_progress=data["progress"], pipeline=data.get("pipeline"),
                   block=BlockRun.from_json(data["block"]) if "block" in data else None,
                   targets=list(data["targets"]), checkpoint_seconds=data["checkpoint_seconds"])


@dataclass(frozen=True)
class BlockRun:
    """How a run has a block card run where only the store is shared, as its RunServices say
    (engine/blocks.py): where iteration checkpoints go and how often, which ones it may take up, where it stops,
    and which of its events to relay."""

    #: the run the block's iteration checkpoints are recorded under
    run_id: str
    checkpoint_seconds: float = 60.0
    #: persist `all`: a checkpoint after every top-level iteration
    every_iteration: bool = False
    #: whether the block may go on from a checkpoint an earlier run stored
    use_cache: bool = True
    #: blocks at or after this position run every iteration (`--from` a card)
    fresh_from: int = 1 << 62
    #: (top-level block, iteration) that `--from`/`--only` an iteration path re-runs from
    start_at: tuple[str, int] | None = None
    #: the iteration path the run stops right after (`--until`/`--only`)
    stop_at: str | None = None
    #: relay the body cards' events (BodyCardEvent), the block's progress (BlockProgress)
    body_events: bool = False
    block_progress: bool = False
    #: body card executions the worker keeps before it writes them to the run records as a chunk
    stats_chunk: int = 1 << 16

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "checkpoint_seconds": self.checkpoint_seconds,
                "every_iteration": self.every_iteration, "use_cache": self.use_cache, "fresh_from": self.fresh_from,
                "start_at": list(self.start_at) if self.start_at is not None else None, "stop_at": self.stop_at,
                "body_events": self.body_events, "block_progress": self.block_progress,
                "stats_chunk": self.stats_chunk}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockRun:
        start_at = data["start_at"]
        return cls(**{**data, "start_at": (start_at[0], start_at[1]) if start_at is not None else None})


@dataclass(frozen=True)
class BodyCardEvent:
    """A card of the running block's body started (`status` "started") or finished ("done", "skipped"), under its
    iteration path (`epochs[3].steps[7].fwd`): sent before the outcome, when the task's BlockRun asks."""

    path: str
    status: str
    seconds: float = 0.0
    #: a card that is done: its outputs as the worker stored them, in CardOutcome.outputs's form (every output
    #: under persist `all`, else only its metrics, by their summaries); None otherwise
    outputs: dict[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"body": [self.path, self.status, self.seconds, self.outputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BodyCardEvent:
        return cls(*data["body"])


@dataclass(frozen=True)
class BlockProgress:
    """The running block finished an iteration of one of its loops: {"iterations": [...], "metrics": {...}}
    (RunHooks.block_progress)."""

    progress: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"block_progress": self.progress}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockProgress:
        return cls(data["block_progress"])


def report_from_json(data: dict[str, Any]) -> CardProgress | BodyCardEvent | BlockProgress | None:
    """The report a worker sent before a task's outcome; None for the outcome itself."""
    if "progress" in data:
        return CardProgress.from_json(data)
    if "body" in data:
        return BodyCardEvent.from_json(data)
    if "block_progress" in data:
        return BlockProgress.from_json(data)
    return None


@dataclass(frozen=True)
class CardProgress:
    """A progress report of the running target (its context's `report`): sent before the outcome."""

    step: int
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"progress": [self.step, self.steps, self.metrics]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardProgress:
        return cls(*data["progress"])


@dataclass(frozen=True)
class TaskFailure:
    """Why a task failed: a card's failure (the target's, or that of a card recomputed for it), or the worker's."""

    #: the sentence to show: a card's error, or the exception's type and message
    reason: str
    #: the card that failed and its type; None when the worker itself failed (the executor names the target)
    card_id: str | None = None
    card_type: str | None = None
    #: the traceback of an exception that is no card's failure (a bug), for debugging
    traceback: str | None = None


@dataclass(frozen=True)
class CardOutcome:
    """What a CardTask did: what it stored, or why it failed.

    `outputs` and `snapshots` are in the form the recorder records (`RunHooks.card_stored`).
    """

    #: the worker's seconds for the task: loads, the cards, writing outputs and snapshots
    seconds: float = 0.0
    #: each output port of the target -> {"kind", "digest" (None: not stored as an artifact), "summary", and for
    #: a stored artifact "codec" and "size"}; for a training-state port {"kind", "digest": None, "state": name}
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: each state version the target made, as stored: {"group", "version", "members": {name: {"kind", "digest",
    #: "codec", "size"}}}; with a failure, the versions earlier targets of the task made and left unstored, stored
    #: after it (`Worker.run`)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    #: None when the task succeeded
    failure: TaskFailure | None = None
    #: a block: what each of its body cards did (engine/blocks.IterationStats.plain), also when it failed
    iteration_stats: list[dict[str, Any]] = field(default_factory=list)
    #: a block stopped part-way where the run was told to stop: that iteration path (nothing is stored then)
    stopped_at: str | None = None
    #: the target did not run: why (its `when` did not hold); `outputs` then holds its state ports only
    skipped: str | None = None
    #: when the target started in the worker, in seconds since the epoch (0: not known)
    started: float = 0.0

    def to_json(self) -> dict[str, Any]:
        stats = [{**s, **{name: base64.b64encode(s[name]).decode() for name in BINARY_STATS}}
                 for s in self.iteration_stats]
        if self.failure is not None:
            failed = self.failure
            found = {"error": failed.reason, "card": failed.card_id, "type": failed.card_type,
                     "traceback": failed.traceback, "iteration_stats": stats or None,
                     "snapshots": self.snapshots or None}
            return {key: value for key, value in found.items() if value is not None}
        return {"seconds": self.seconds, "outputs": self.outputs, "snapshots": self.snapshots,
                "iteration_stats": stats, "stopped_at": self.stopped_at, "skipped": self.skipped,
                "started": self.started}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardOutcome:
        stats = [{**s, **{name: base64.b64decode(s[name]) for name in BINARY_STATS}}
                 for s in data.get("iteration_stats", ())]
        if "error" in data:
            return cls(failure=TaskFailure(data["error"], data.get("card"), data.get("type"), data.get("traceback")),
                       iteration_stats=stats, snapshots=data.get("snapshots", []))
        return cls(data["seconds"], data["outputs"], data["snapshots"], None, stats, data.get("stopped_at"),
                   data.get("skipped"), data.get("started", 0.0))


#: the fields of a body card's statistics that are arrays, as bytes (base64 in JSON)
BINARY_STATS = ("status", "seconds", "indices", "metrics")
