"""Run events. Progress bars, run records and persistence hang off these hooks (docs/design.md, Executors).

Executors call the `RunHooks` methods; listeners implement any subset of them. `EventForwarder` turns
hook calls into `CardEvent` objects for user callbacks (the CLI's progress bar, the editor's WebSocket).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.record_rows import metric_series

EventKind = Literal["run_started", "started", "progress", "done", "skipped", "cached", "failed", "run_finished"]


@dataclass(slots=True)
class CardEvent:
    """One thing that happened in a run, as user callbacks see it (read it, do not change it: a frozen
    dataclass would cost each of a step's dozen events 1-2 µs more)."""

    kind: EventKind
    run_id: str
    total: int
    card_id: str | None = None
    card_type: str | None = None
    position: int | None = None
    seconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    status: str | None = None
    #: a `progress` event's step of how many (a long card's own steps, such as a training loop's)
    step: int | None = None
    steps: int | None = None
    #: a block's `progress` event: each loop's iteration (from 0) of how many (None: not known yet), outermost
    #: first, as [{"block": "epochs", "index": 3, "total": 10}, ...]
    iterations: list[dict[str, Any]] | None = None


class RunHooks:
    """Fan-out of run events to listeners; a listener implements only the methods it needs."""

    METHODS = ("run_started", "card_started", "card_progress", "card_checkpoint", "card_done", "card_stored",
               "card_cached", "card_skipped", "card_failed", "card_interrupted", "run_finished", "body_card_started",
               "body_card_finished", "body_card_stored", "block_progress", "block_stats", "block_checkpoint",
               "block_stopped", "state_stored")

    def __init__(self, listeners: list[Any]):
        for method in self.METHODS:
            bound = tuple(getattr(listener, method) for listener in listeners if hasattr(listener, method))
            setattr(self, f"_{method}", bound)
            if len(bound) == 1:  # the common case: call the listener directly, without a loop
                setattr(self, method, bound[0])
            elif not bound:
                setattr(self, method, _ignore)

    def run_started(self, plan: Plan, run_id: str) -> None:
        for call in self._run_started:
            call(plan, run_id)

    def card_started(self, pc: PlannedCard) -> None:
        for call in self._card_started:
            call(pc)

    def card_progress(self, pc: PlannedCard, step: int, steps: int, metrics: dict[str, float]) -> None:
        """A running card reported how far it has come (through its context's `report`)."""
        for call in self._card_progress:
            call(pc, step, steps, metrics)

    def card_checkpoint(self, pc: PlannedCard, step: int, extra: dict[str, Any]) -> None:
        """A running card offered its state after `step` of its own steps (its context's `checkpoint`)."""
        for call in self._card_checkpoint:
            call(pc, step, extra)

    def card_done(self, pc: PlannedCard, outputs: dict[str, Any], started: float, seconds: float) -> None:
        for call in self._card_done:
            call(pc, outputs, started, seconds)

    def card_stored(self, pc: PlannedCard, recorded: dict[str, Any], snapshots: list[dict], started: float,
                    seconds: float) -> None:
        """`pc` ran in another process, which stored its outputs (`recorded`) and state `snapshots`."""
        for call in self._card_stored:
            call(pc, recorded, snapshots, started, seconds)

    def card_cached(self, pc: PlannedCard, recorded: dict[str, Any]) -> None:
        """`pc` is served from the store; `recorded` is the outputs column of the execution that made it."""
        for call in self._card_cached:
            call(pc, recorded)

    def card_skipped(self, pc: PlannedCard, reason: str, snapshots: list[dict] = ()) -> None:
        """`pc` did not run: its `when` did not hold, or it needs a value a skipped card did not make (`reason`).
        `snapshots`: the state it passed on, as another process stored it (RunHooks.card_stored's)."""
        for call in self._card_skipped:
            call(pc, reason, snapshots)

    def card_failed(self, pc: PlannedCard, error: BaseException, started: float, seconds: float) -> None:
        for call in self._card_failed:
            call(pc, error, started, seconds)

    def card_interrupted(self, pc: PlannedCard) -> None:
        """The run was stopped (Ctrl-C) while `pc` ran."""
        for call in self._card_interrupted:
            call(pc)

    def run_finished(self, status: str, error: BaseException | None) -> None:
        for call in self._run_finished:
            call(status, error)

    def body_card_started(self, path: str, pc: PlannedCard) -> None:
        """A card of a block's body starts; `path` names its iteration (`epochs[3].batches[7].fwd`), `pc` is the
        card as the body's plan has it. Executors call this (and the next) only when a listener implements it."""
        for call in self._body_card_started:
            call(path, pc)

    def body_card_finished(self, path: str, pc: PlannedCard, status: str, seconds: float,
                           outputs: dict[str, Any] | None) -> None:
        """A body card is done (`status` "done") or skipped ("skipped", no outputs)."""
        for call in self._body_card_finished:
            call(path, pc, status, seconds, outputs)

    def body_card_stored(self, path: str, pc: PlannedCard, status: str, seconds: float,
                         recorded: dict[str, Any] | None) -> None:
        """A body card that ran in another process is done or skipped; `recorded` holds its outputs as that
        process stored them (as `card_stored`'s: every output under persist `all`, else its metrics)."""
        for call in self._body_card_stored:
            call(path, pc, status, seconds, recorded)

    def block_progress(self, pc: PlannedCard, progress: dict[str, Any]) -> None:
        """A top-level block `pc` finished an iteration of one of its loops: {"iterations": [...], "metrics"}."""
        for call in self._block_progress:
            call(pc, progress)

    def block_checkpoint(self, pc: PlannedCard, key: str, step: int, extra: dict[str, Any],
                         carried: tuple[Any, ...] = ()) -> None:
        """Store the training state top-level block `pc` works on, as it is after its iteration `step`, with
        `extra` and the carried values that are state (`carried`: encoded snapshots), under the boundary key `key`
        (engine/blocks.py)."""
        for call in self._block_checkpoint:
            call(pc, key, step, extra, carried)

    def block_stopped(self, pc: PlannedCard, path: str) -> None:
        """Top-level block `pc` stopped where the run was told to stop (`--until`/`--only` an iteration path):
        its outputs are those of a part of its iterations, never to be served from the cache as the block's."""
        for call in self._block_stopped:
            call(pc, path)

    def block_stats(self, pc: PlannedCard, stats: list[Any]) -> None:
        """The top-level block `pc` ended (or stopped): what each of its body cards did (engine/blocks.py)."""
        for call in self._block_stats:
            call(pc, stats)

    def state_stored(self, pc: PlannedCard, snapshots: list[dict]) -> None:
        """Snapshots of the state `pc` made, stored elsewhere after its `card_stored` (by a Ray call that stopped
        at a failure: the state the last finished card left, as the recorder keeps it for the local executor)."""
        for call in self._state_stored:
            call(pc, snapshots)


def _ignore(*args: Any) -> None:
    pass


def listens(hooks: RunHooks, method: str) -> bool:
    """Whether any listener implements `method` (an executor can then skip calling it per card)."""
    return getattr(hooks, method) is not _ignore


def recorded_metric_rows(pc: PlannedCard, recorded: dict[str, Any]) -> list[tuple[str, float]]:
    """The metric values of a card that ran elsewhere or is served from the store, from its recorded
    outputs: (port, value) for a scalar, and for each step of a series, in order."""
    rows = []
    for port in pc.card_type.outputs:
        if port.metric:
            rows.extend((port.name, value) for value in metric_series((recorded.get(port.name) or {}).get("summary")))
    return rows


def recorded_metrics(pc: PlannedCard, recorded: dict[str, Any]) -> dict[str, float]:
    """The metric outputs of such a card as progress events show them: a series by its last value."""
    return dict(recorded_metric_rows(pc, recorded))


class EventForwarder:
    """Calls `callback(CardEvent)` for every run event."""

    def __init__(self, callback: Callable[[CardEvent], None]):
        self.callback = callback
        self.run_id = ""
        self.total = 0
        self._metric_ports: dict[str, tuple[str, ...]] = {}  # by card type id: one registry per run
        self._stopped: set[int] = set()  # positions of blocks stopped part-way

    def run_started(self, plan: Plan, run_id: str) -> None:
        self.run_id, self.total = run_id, len(plan)
        self.callback(CardEvent("run_started", run_id, self.total))

    def _card_event(self, kind: EventKind, pc: PlannedCard, **extra: Any) -> None:
        self.callback(CardEvent(kind, self.run_id, self.total, pc.id, pc.card.type, pc.position, **extra))

    def card_started(self, pc: PlannedCard) -> None:
        self._card_event("started", pc)

    def card_progress(self, pc: PlannedCard, step: int, steps: int, metrics: dict[str, float]) -> None:
        self._card_event("progress", pc, metrics=dict(metrics), step=step, steps=steps)

    def card_done(self, pc: PlannedCard, outputs: dict[str, Any], started: float, seconds: float) -> None:
        self._card_event("done", pc, seconds=seconds, metrics=self._metrics(pc, outputs),
                         status="stopped" if pc.position in self._stopped else None)

    def block_stopped(self, pc: PlannedCard, path: str) -> None:
        """A block stopped part-way (`--until` an iteration path): its `done` event says `status: "stopped"`."""
        self._stopped.add(pc.position)

    def _metrics(self, pc: PlannedCard, outputs: dict[str, Any]) -> dict[str, float]:
        """The card's outputs marked `metric`, as floats (a series by its last value)."""
        names = self._metric_ports.get(pc.card_type.id)
        if names is None:
            names = self._metric_ports[pc.card_type.id] = tuple(p.name for p in pc.card_type.outputs if p.metric)
        return {name: series[-1] for name in names if (series := metric_series(outputs.get(name)))}

    def card_cached(self, pc: PlannedCard, recorded: dict[str, Any]) -> None:
        self._card_event("cached", pc, metrics=recorded_metrics(pc, recorded))

    def card_skipped(self, pc: PlannedCard, reason: str, snapshots: list[dict] = ()) -> None:
        self._card_event("skipped", pc, status="skipped", error=reason)

    def body_card_started(self, path: str, pc: PlannedCard) -> None:
        self.callback(CardEvent("started", self.run_id, self.total, path, pc.card.type))

    def body_card_finished(self, path: str, pc: PlannedCard, status: str, seconds: float,
                           outputs: dict[str, Any] | None) -> None:
        self._body_event(path, pc, status, seconds, self._metrics(pc, outputs) if outputs is not None else {})

    def body_card_stored(self, path: str, pc: PlannedCard, status: str, seconds: float,
                         recorded: dict[str, Any] | None) -> None:
        self._body_event(path, pc, status, seconds, recorded_metrics(pc, recorded) if recorded is not None else {})

    def _body_event(self, path: str, pc: PlannedCard, status: str, seconds: float, metrics: dict[str, float]) -> None:
        self.callback(CardEvent("done" if status == "done" else "skipped", self.run_id, self.total, path,
                                pc.card.type, seconds=seconds, metrics=metrics, status=status))

    def block_progress(self, pc: PlannedCard, progress: dict[str, Any]) -> None:
        outer = progress["iterations"][0]
        self._card_event("progress", pc, metrics=progress["metrics"], step=outer["index"] + 1, steps=outer["total"],
                         iterations=progress["iterations"])

    def card_stored(self, pc: PlannedCard, recorded: dict[str, Any], snapshots: list[dict], started: float,
                    seconds: float) -> None:
        self._card_event("done", pc, seconds=seconds, metrics=recorded_metrics(pc, recorded))

    def card_failed(self, pc: PlannedCard, error: BaseException, started: float, seconds: float) -> None:
        self._card_event("failed", pc, seconds=seconds, error=str(error))

    def run_finished(self, status: str, error: BaseException | None) -> None:
        self.callback(CardEvent("run_finished", self.run_id, self.total, status=status,
                                error=str(error) if error else None))
