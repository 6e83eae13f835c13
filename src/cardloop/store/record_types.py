"""The rows of the run records: runs, card executions, metrics, artifacts and training-state snapshots."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

RUN_STATUSES = ("running", "succeeded", "failed", "cancelled")
#: How a run still marked `running` is shown when no process runs it any more (it was killed).
INTERRUPTED = "interrupted"
EXECUTION_STATUSES = ("done", "cached", "failed", "skipped", "stopped")  # stopped: a block run in part (--until)


@dataclass(frozen=True)
class RunRecord:
    """One run: what ran, how, and how it ended (`status` is one of RUN_STATUSES, or INTERRUPTED)."""

    run_id: str
    name: str
    pipeline: dict[str, Any]
    executor: str
    persist: str
    status: str
    error: str | None
    started_at: float
    ended_at: float | None
    options: dict[str, Any]


@dataclass(frozen=True)
class CardExecution:
    """One card's execution in a run.

    `outputs` maps port -> {kind, digest (or None), summary}; `states_seen` and `states_made` map a
    training-state group to the version the card saw and made.
    """

    run_id: str
    card_id: str
    position: int
    card_type: str
    status: str
    started_at: float
    seconds: float
    error: str | None = None
    cache_hit: bool = False
    cache_key: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    states_seen: dict[str, int] = field(default_factory=dict)
    states_made: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in EXECUTION_STATUSES:
            raise ValueError(f"card execution status '{self.status}' is not one of {', '.join(EXECUTION_STATUSES)}")


class ExecutionRow(NamedTuple):
    """What a view of a whole run shows of one card execution, read without decoding: `outputs` is the JSON
    text of CardExecution.outputs. Cheap enough to read for every card of a 10,000-card run."""

    position: int
    card_id: str
    card_type: str
    status: str
    seconds: float
    error: str | None
    cache_hit: bool
    outputs: str


@dataclass(frozen=True)
class Metric:
    """One value of a named metric (e.g. `loss`) that a card reported at a step."""

    run_id: str
    card_id: str
    name: str
    step: int
    value: float


@dataclass(frozen=True)
class ArtifactRecord:
    """Which run, card and output port wrote an artifact."""

    digest: str
    kind: str
    codec: str
    size: int
    run_id: str
    card_id: str
    port: str
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class StateSnapshot:
    """A training-state group at one version, as the card at `position` left it.

    `members` maps each state's name to {kind, digest}; `cache_key` is the key of the card that made the version.
    """

    run_id: str
    card_id: str
    position: int
    group: str
    version: int
    cache_key: str
    members: dict[str, Any]
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class IterationCards:
    """What one card of a block's body did in every iteration of a run, in arrays (a few bytes per execution):
    `status` one byte each (1 done, 0 skipped), `times` float32 seconds, `indices` int64 iteration numbers
    (`depth` per execution, outermost loop first), `metric_values` float64 values of each metric in
    `metric_names` (JSON list), one array after the other; NaN where the card was skipped. A long block writes
    its rows in chunks as it goes (`chunk`: the top-level iteration a chunk starts at); reading joins them."""

    run_id: str
    path: str  # the static path, `epochs.batches.fwd`
    card_type: str
    depth: int
    executions: int
    skipped: int
    seconds: float
    status: bytes
    times: bytes
    indices: bytes
    metric_names: str
    metric_values: bytes
    chunk: int = 0

    def arrays(self) -> tuple[bytes, Any, Any, dict[str, Any]]:
        """(status, seconds, indices as rows of `depth`, {metric: values}) as Python arrays."""
        from array import array

        times, indices, values = array("f"), array("q"), array("d")
        times.frombytes(self.times)
        indices.frombytes(self.indices)
        values.frombytes(self.metric_values)
        names = json.loads(self.metric_names)
        n = self.executions
        rows = [tuple(indices[i * self.depth:(i + 1) * self.depth]) for i in range(n)]
        return self.status, times, rows, {name: values[k * n:(k + 1) * n] for k, name in enumerate(names)}

    @classmethod
    def joined(cls, chunks: list[IterationCards]) -> IterationCards:
        """One row from the chunks of one body card, in iteration order: each metric's values stay one array."""
        if len(chunks) == 1:
            return chunks[0]
        first = chunks[0]
        metrics = len(json.loads(first.metric_names))
        values = b"".join(c.metric_values[k * c.executions * 8:(k + 1) * c.executions * 8]
                          for k in range(metrics) for c in chunks)
        return cls(first.run_id, first.path, first.card_type, first.depth, sum(c.executions for c in chunks),
                   sum(c.skipped for c in chunks), sum(c.seconds for c in chunks),
                   b"".join(c.status for c in chunks), b"".join(c.times for c in chunks),
                   b"".join(c.indices for c in chunks), first.metric_names, values, first.chunk)


@dataclass(frozen=True)
class SweepVariant:
    """One variant of a sweep: its settings ({'<card>.<field>': value}), its run (None until it ran, or when it
    failed before its run started), its status (`pending`, then how its run ended) and error."""

    index: int
    settings: dict[str, Any]
    run_id: str | None
    status: str
    error: str | None = None


@dataclass(frozen=True)
class SweepRecord:
    """One sweep (cardloop.sweeps): the pipeline swept, its settings ({path: [values]}), its options (random,
    seed, parallel, executor, persist, the run of its shared cards), how it ended and its variants."""

    sweep_id: str
    name: str
    pipeline: dict[str, Any]
    settings: dict[str, Any]
    options: dict[str, Any]
    status: str
    started_at: float
    ended_at: float | None
    variants: list[SweepVariant] = field(default_factory=list)
