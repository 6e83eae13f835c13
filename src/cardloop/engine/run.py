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
    registry: Registry | None = None,
) -> RunResult:
    """Run a pipeline (object or file) and record it in the store.

    `executor`: where cards run ("local"). `store`: the store root (default `$CARDLOOP_STORE` or
    `./.cardloop`). `persist`: "checkpoint" (default) or "all". `threads`: torch's CPU thread count.
    `progress`: called with a CardEvent for every run event. `cards`: extra card files to load first.
    Raises PipelineInvalid before anything runs, and CardFailed (with `.result`) when a card fails.
    """
    for path in cards or ():
        load_card_file(path)
    if executor not in EXECUTORS:
        raise CardloopError(f"unknown executor '{executor}'; valid executors: {', '.join(EXECUTORS)}")
    policy = PersistPolicy.named(persist, checkpoint_seconds)
    pipeline, source = resolve_pipeline(pipeline_or_path)
    plan = plan_pipeline(pipeline, registry, source)
    return execute_plan(plan, executor=executor, store=store, policy=policy, threads=threads, progress=progress)


def execute_plan(plan: Plan, *, executor: str, store: str | Path | None, policy: PersistPolicy,
                 threads: int | None, progress: Callable[[CardEvent], None] | None) -> RunResult:
    import torch

    from cardloop.engine.local import LocalExecutor
    from cardloop.engine.recorder import RunRecorder
    from cardloop.store.artifacts import ArtifactStore, default_store_root
    from cardloop.store.records import RunRecords

    root = Path(store) if store is not None else default_store_root()
    artifacts = ArtifactStore(root)
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
        LocalExecutor().run(plan, hooks, slots)
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
    outputs = {pc.id: {port: slots[slot] for port, slot in pc.output_slots.items()}
               for pc in plan.cards if any(slots[s] is not None for s in pc.output_slots.values())}
    return RunResult(run_id, status, outputs, root, time.perf_counter() - started, error)
