"""Running a pipeline: plan it (engine/plan.py), decide what to execute and what the store already holds
(engine/work.py), record the run (engine/recorder.py), execute it with the executor named in the options
(engine/executors.py), and return the result (engine/result.py)."""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardloop.cards.registry import Registry, card_files_of, loaded_among, load_card_file
from cardloop.engine.blocks import first_iteration, iteration_target
from cardloop.engine.events import CardEvent, EventForwarder, RunHooks
from cardloop.engine.executors import ExecutorSetup, executor_entry, make_executor
from cardloop.engine.persist import DEFAULT_POLICY, PersistPolicy
from cardloop.engine.plan import Plan, collector_paused, plan_pipeline
from cardloop.engine.result import ResultOutputs, RunResult
from cardloop.engine.work import _position, check_storable, checkpoint_resumes, plan_work
from cardloop.errors import CardFailed, InvalidOption
from cardloop.pipeline.blocks import cards_within
from cardloop.pipeline.fileformat import load_pipeline
from cardloop.pipeline.model import Pipeline


@dataclass(frozen=True)
class RunOptions:
    """How to run: which executor, what to keep, what to take from the cache, which part to run."""

    executor: str = "local"
    persist: PersistPolicy = field(default_factory=lambda: PersistPolicy.named(DEFAULT_POLICY))
    threads: int | None = None
    keep_outputs: bool = False
    use_cache: bool = True
    only: str | None = None
    until: str | None = None
    from_card: str | None = None
    workers: int = 1
    #: the Ray cluster the ray executor joins (None: a Ray it starts on this machine)
    ray_address: str | None = None


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
    cache: bool = True,
    only: str | None = None,
    until: str | None = None,
    from_card: str | None = None,
    workers: int = 1,
    registry: Registry | None = None,
    ray_address: str | None = None,
    artifacts: str | None = None,
) -> RunResult:
    """Run a pipeline (object or file) and record it in the store.

    `executor`: "local" (live objects in this process), "process" (every card in a warm worker process,
    its inputs read from the store and its outputs written back), "ray" (a Ray actor that keeps the training
    state, on the cluster at `ray_address` or a Ray started on this machine), or another registered name
    (`cardloop.engine.executors.register_executor`). `store`: the store root (default
    `$CARDLOOP_STORE` or `./.cardloop`). `persist`: "checkpoint" (default) or "all". `threads`: torch's CPU
    thread count. `progress`: called with a CardEvent for every run event. `cards`: extra card files.
    `keep_outputs`: keep every value in `RunResult.outputs` (by default a value that cards read is dropped
    after its last reader). `cache=False` runs every card even if the store has its outputs. `only`: run
    just this card, from the stored outputs of the cards above it; `until`: run up to and including this
    card; `from_card`: re-run this card and every card after it. `artifacts`: a URL (`s3://bucket/prefix`)
    where the store keeps its artifacts from now on, its run records staying in the store folder (docs/store.md).
    Raises PipelineInvalid before anything runs, and CardFailed (with `.result`) when a card fails.
    """
    for path in cards or ():
        load_card_file(path)
    executor_entry(executor)  # an unknown name is refused before the pipeline is read
    if ray_address is not None and executor != "ray":
        raise InvalidOption(f"ray_address is for the ray executor; this run's executor is '{executor}'")
    if artifacts is not None:
        from cardloop.store.location import bind_artifacts
        from cardloop.store.root import default_store_root

        bind_artifacts(Path(store) if store is not None else default_store_root(), artifacts)
    pipeline, source = resolve_pipeline(pipeline_or_path)
    plan = plan_pipeline(pipeline, registry, source)
    only, until, from_card = (first_iteration(plan, name) for name in (only, until, from_card))
    options = RunOptions(executor, PersistPolicy.named(persist, checkpoint_seconds), threads, keep_outputs, cache,
                         only, until, from_card, workers, ray_address)
    return execute_plan(plan, store=store, options=options, progress=progress,
                        card_files=worker_card_files(plan))


def worker_card_files(plan: Plan) -> list[str]:
    """The card files a worker of the process executor loads: those that define the plan's card types, then the
    card files of user code that a card's config names (`code_files`: the card file of a model class)."""
    cards = list(cards_within((pc.card_type, pc.config) for pc in plan.cards))
    named = loaded_among(path for card_type, config in cards if card_type.code_files is not None
                         for path in card_type.code_files(config))
    return list(dict.fromkeys([*card_files_of(card_type for card_type, _ in cards), *named]))


def execute_plan(plan: Plan, *, store: str | Path | None, options: RunOptions,
                 progress: Callable[[CardEvent], None] | None = None, card_files: list[str] = ()) -> RunResult:
    import torch

    from cardloop.engine.recorder import RunRecorder
    from cardloop.engine.stored import NothingStored, StoreAvailability, StoreLoader
    from cardloop.store.artifacts import ArtifactStore, default_store_root
    from cardloop.store.records import RunRecords

    chosen = executor_entry(options.executor)
    root = Path(store) if store is not None else default_store_root()
    artifacts = ArtifactStore(root, durable=False)
    records = RunRecords(root / "runs.sqlite")
    with collector_paused():  # what the store holds, the schedule and the run's records: a few objects per card
        available = StoreAvailability(plan, records, artifacts) if options.use_cache or options.only \
            else NothingStored()
        plan, work = plan_work(plan, options, available)
        stored_by_type = check_storable(plan, work, options.persist, chosen.stores_every_output)
        if chosen.check is not None:  # e.g. resources no node of the cluster has: refused before it is recorded
            chosen.check(plan, work, options)
        run_id = new_run_id()
        records.start_run(run_id, name=plan.pipeline.name, pipeline=plan.pipeline.to_dict(),
                          executor=options.executor, persist=options.persist.name,
                          options={"threads": options.threads, "only": options.only, "until": options.until,
                                   "from": options.from_card, "cache": options.use_cache})
        slots: list[Any] = [None] * plan.slot_count
        recorder = RunRecorder(plan, artifacts, records, options.persist, run_id, slots, work.run)
        listeners: list[Any] = [recorder] + ([EventForwarder(progress)] if progress is not None else [])
        hooks = RunHooks(listeners)
        previous_threads = torch.get_num_threads()
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        started = time.perf_counter()
        hooks.run_started(plan, run_id)
        cached = []
        for pc in work.skipped:
            prior = available.prior(pc)
            if prior is not None:
                hooks.card_cached(pc, prior)
                cached.append(pc.id)
        frozen = _freeze_earlier_objects()

    def result(status: str, error: CardFailed | None) -> RunResult:
        outputs = ResultOutputs(plan, slots, work.run_positions, available,
                                lambda cards: StoreAvailability(plan, records, artifacts, cards),
                                StoreLoader(artifacts))
        return RunResult(run_id, status, outputs, root, time.perf_counter() - started, error,
                         executed=[pc.id for pc in work.run], cached=cached)

    resumes = checkpoint_resumes(work, records, available) if chosen.resumes_checkpoints and options.use_cache \
        else {}
    from cardloop.engine.blocks import RunServices, reset, serving

    token = serving(RunServices(hooks, plan, slots, records, available, StoreLoader(artifacts),
                                options.persist.checkpoint_seconds, options.persist.name == "all",
                                options.use_cache, _fresh_from(plan, options), _start_at(options),
                                options.until or options.only if iteration_target(options.until or options.only)
                                else None, run_id=run_id))
    try:
        executor = make_executor(options.executor, ExecutorSetup(root, options, list(card_files), stored_by_type,
                                                                 resumes))
        executor.run(plan, hooks, slots, work, StoreLoader(artifacts))
    except CardFailed as failure:
        hooks.run_finished("failed", failure)
        failure.result = result("failed", failure)
        raise
    except BaseException as interrupt:
        hooks.run_finished("cancelled", interrupt)
        raise
    finally:
        reset(token)
        torch.set_num_threads(previous_threads)
        if frozen:
            gc.unfreeze()
    hooks.run_finished("succeeded", None)
    return result("succeeded", None)


def _fresh_from(plan: Plan, options: RunOptions) -> int:
    """The position from which blocks run every iteration, whatever the store holds (`--from` a card)."""
    if not options.from_card or iteration_target(options.from_card):
        return 1 << 62
    return _position(plan, options.from_card, "from")


def _start_at(options: RunOptions) -> tuple[str, int] | None:
    """(block, iteration) that `--from` or `--only` an iteration path re-runs from."""
    return iteration_target(options.from_card) or iteration_target(options.only)


def _freeze_earlier_objects() -> bool:
    """Have the garbage collector leave alone, while the cards run, every object made before them (`gc.freeze`;
    the caller unfreezes after): the plan and the run's set-up, a few objects per card, and torch's modules and
    the caller's objects. Its passes then cost what the run's own objects cost, instead of a pass over the whole
    heap each time the set-up's objects have piled up. Not done when something else froze objects (a server that
    forks): unfreezing would undo that. Returns whether it froze."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


