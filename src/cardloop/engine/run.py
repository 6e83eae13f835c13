"""Running a pipeline: plan it, open the store, start the run record, execute, and return the result."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cardloop.cards.registry import Registry, load_card_file
from cardloop.engine.events import CardEvent, EventForwarder, RunHooks
from cardloop.engine.persist import DEFAULT_POLICY, PersistPolicy
from cardloop.engine.plan import Plan, plan_pipeline
from cardloop.errors import CardFailed, CardloopError
from cardloop.pipeline.fileformat import load_pipeline
from cardloop.pipeline.model import Pipeline

EXECUTORS = ("local",)


@dataclass
class RunResult:
    """What a run made. `outputs[card_id][port]` are live values: a model is a torch.nn.Module.

    Training state is live and shared: every card's `model` output is the same module, as the run left it.
    Earlier versions of the state are in the store (see the persist policy).
    """

    run_id: str
    status: str
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    store_root: Path | None = None
    seconds: float = 0.0
    error: CardFailed | None = None

    def metrics(self, name: str = "loss_value") -> list[float]:
        """The metric `name` of every card that made one, in script order."""
        return [ports[name] for ports in self.outputs.values() if isinstance(ports.get(name), (int, float))]


class PortValues(dict):
    """One card's outputs; a value dropped after its last use says so instead of a bare KeyError."""

    def __init__(self, card_id: str, values: dict[str, Any], released: set[str]):
        super().__init__(values)
        self.card_id, self.released = card_id, released

    def __missing__(self, port: str) -> Any:
        if port in self.released:
            raise KeyError(f"output '{port}' of card '{self.card_id}' was released after the last card that read "
                           "it; run with keep_outputs=True to keep every value, or read it from the store "
                           "(persist 'all')")
        raise KeyError(f"card '{self.card_id}' has no output '{port}'")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def resolve_pipeline(pipeline_or_path: Pipeline | str | Path) -> tuple[Pipeline, str | None]:
    if isinstance(pipeline_or_path, Pipeline):
        return pipeline_or_path, None
    return load_pipeline(pipeline_or_path), str(pipeline_or_path)


def run(
    pipeline_or_path: Pipeline | str | Path,
    *,
    executor: str = "local",
    store: str | Path | None = None,
    persist: str = DEFAULT_POLICY,
    threads: int | None = None,
    progress: Callable[[CardEvent], None] | None = None,
    cards: list[str | Path] | None = None,
    checkpoint_seconds: float = 60.0,
    keep_outputs: bool = False,
    registry: Registry | None = None,
) -> RunResult:
    """Run a pipeline (object or file) and record it in the store.

    `executor`: where cards run ("local"). `store`: the store root (default `$CARDLOOP_STORE` or
    `./.cardloop`). `persist`: "checkpoint" (default) or "all". `threads`: torch's CPU thread count.
    `progress`: called with a CardEvent for every run event. `cards`: extra card files to load first.
    `keep_outputs`: keep every value in `RunResult.outputs`; by default a value that cards read (a batch,
    predictions, a loss) is dropped after its last reader, as a hand-written loop drops them.
    Raises PipelineInvalid before anything runs, and CardFailed (with `.result`) when a card fails.
    """
    for path in cards or ():
        load_card_file(path)
    if executor not in EXECUTORS:
        raise CardloopError(f"unknown executor '{executor}'; valid executors: {', '.join(EXECUTORS)}")
    policy = PersistPolicy.named(persist, checkpoint_seconds)
    pipeline, source = resolve_pipeline(pipeline_or_path)
    plan = plan_pipeline(pipeline, registry, source)
    return execute_plan(plan, executor=executor, store=store, policy=policy, threads=threads, progress=progress,
                        keep_outputs=keep_outputs)


def execute_plan(plan: Plan, *, executor: str, store: str | Path | None, policy: PersistPolicy,
                 threads: int | None, progress: Callable[[CardEvent], None] | None,
                 keep_outputs: bool = False) -> RunResult:
    import torch

    from cardloop.engine.local import LocalExecutor
    from cardloop.engine.recorder import RunRecorder
    from cardloop.store.artifacts import ArtifactStore, default_store_root
    from cardloop.store.records import RunRecords

    root = Path(store) if store is not None else default_store_root()
    artifacts = ArtifactStore(root, durable=False)
    records = RunRecords(root / "runs.sqlite")
    run_id = new_run_id()
    records.start_run(run_id, name=plan.pipeline.name, pipeline=plan.pipeline.to_dict(), executor=executor,
                      persist=policy.name, options={"threads": threads})
    slots: list[Any] = [None] * plan.slot_count
    listeners: list[Any] = [RunRecorder(plan, artifacts, records, policy, run_id, slots)]
    if progress is not None:
        listeners.append(EventForwarder(progress))
    hooks = RunHooks(listeners)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    hooks.run_started(plan, run_id)
    try:
        LocalExecutor(keep_outputs).run(plan, hooks, slots)
    except CardFailed as failure:
        hooks.run_finished("failed", failure)
        failure.result = _result(plan, slots, run_id, "failed", root, started, failure)
        raise
    except BaseException as interrupt:
        hooks.run_finished("cancelled", interrupt)
        raise
    finally:
        torch.set_num_threads(previous_threads)
    hooks.run_finished("succeeded", None)
    return _result(plan, slots, run_id, "succeeded", root, started, None)


def _result(plan: Plan, slots: list[Any], run_id: str, status: str, root: Path, started: float,
            error: CardFailed | None) -> RunResult:
    from cardloop.engine.local import RELEASED

    outputs = {}
    for pc in plan.cards:
        values = {port: slots[slot] for port, slot in pc.output_slots.items()}
        if all(value is None for value in values.values()):
            continue  # not run
        released = {port for port, value in values.items() if value is RELEASED}
        outputs[pc.id] = PortValues(pc.id, {p: v for p, v in values.items() if p not in released}, released)
    return RunResult(run_id, status, outputs, root, time.perf_counter() - started, error)
