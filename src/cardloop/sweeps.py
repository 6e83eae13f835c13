"""Sweeps: one pipeline run once per combination of settings (a grid, or `random` draws from it), each variant a
normal run in the store (docs/sweeps.md).

A setting is `<card path>.<config field>`: `opt.learning_rate`, a body card of a loop block by its static path
(`epochs.batches.loss.loss_type`), a block's own loop settings (`epochs.times`), and keys inside a config field
that is a mapping (`net.kwargs.hidden`). The cards every variant shares before training (the same cache key in
all of them: the data cards) run once: a first run of them keeps every output (persist `all`), and each variant
is then served them from the cache. The variants run in a pool: anything with `concurrent.futures.Executor`'s
`submit` (by default one after the other in this process, or a process pool of `parallel` processes), so
another pool can be passed as `pool=`. On Ray (`executor="ray"`), `parallel` threads of this process each
drive one variant's run at a time, whose cards run on that run's own state actor on the cluster. A variant that
fails is recorded failed and the others go on. The sweep and its variants are recorded in the run records
(`sweeps`, `sweep_variants`).
"""

from __future__ import annotations

import copy
import itertools
import json
import multiprocessing
import os
import random as random_module
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardloop.errors import CardloopError, InvalidOption, PipelineInvalid, Problem
from cardloop.pipeline.model import BLOCK_TYPE, Card, Pipeline
from cardloop.store.record_types import SweepVariant

SUCCEEDED, FAILED = "succeeded", "failed"


@dataclass(frozen=True)
class Variant:
    """One combination of settings: {setting path: value}, in the order the sweep names its settings."""

    index: int
    settings: dict[str, Any]

    @property
    def label(self) -> str:
        return settings_label(self.settings)


def settings_label(settings: Mapping[str, Any]) -> str:
    """`opt.learning_rate=0.003, model.layers=[128, 128]`: what a variant's run is named after."""
    return ", ".join(f"{path}={json.dumps(value)}" for path, value in settings.items())


@dataclass
class SweepResult:
    """What `sweep` made: the sweep's id, each variant's outcome (its settings, run id, status, error), and the
    store they are recorded in (the sweep too: `cardloop sweep-show ID`)."""

    sweep_id: str
    name: str
    outcomes: list[SweepVariant]
    store_root: Path
    shared_run_id: str | None = None

    def table(self, sort: str | None = None):
        """The results as a pandas DataFrame, one row per variant (cardloop.sweep_results.results_table)."""
        from cardloop.sweep_results import results_table

        return results_table(self.store_root, self.outcomes, sort=sort)


# --- settings ----------------------------------------------------------------------------------------------


def find_setting(pipeline: Pipeline, path: str, registry: Any = None) -> tuple[Card, list[str]]:
    """The card a setting path names and the config keys under it (`epochs.batches.loss.loss_type` -> the body
    card `loss`, ['loss_type']). The card is the longest prefix of the path that names a card (a body card is
    reached through its blocks); the first key must be one of its type's config fields. CardloopError naming the
    path and what is valid otherwise."""
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise InvalidOption(f"sweep setting {path!r} is not of the form '<card>.<config field>' "
                            "(e.g. 'opt.learning_rate', or 'epochs.batches.loss.loss_type' for a card in a loop block)")
    parts = path.split(".")
    scope, card, used = pipeline.cards, None, 0
    while used < len(parts):
        found = next((c for c in scope if c.id == parts[used]), None)
        if found is None:
            break
        card, used = found, used + 1
        scope = card.body.cards if card.body is not None else []
    if card is None:
        raise InvalidOption(f"sweep setting '{path}': the pipeline has no card '{parts[0]}'; its cards: "
                            f"{', '.join(c.id for c in pipeline.cards)}")
    where = ".".join(parts[:used])
    fields = _config_fields(card, registry)
    keys = parts[used:]
    inside = f" or a card of its body ({', '.join(c.id for c in card.body.cards)})" if card.body is not None else ""
    if not keys:
        raise InvalidOption(f"sweep setting '{path}' names card '{where}' ({card.type}) but none of its config "
                            f"fields; add one: {', '.join(fields)}")
    if keys[0] not in fields:
        raise InvalidOption(f"sweep setting '{path}': card '{where}' ({card.type}) has no config field "
                            f"'{keys[0]}'{'' if not inside else ' nor body card'}; its config fields: "
                            f"{', '.join(fields)}{inside}")
    return card, keys


def _config_fields(card: Card, registry: Any) -> list[str]:
    if card.type == BLOCK_TYPE:
        from cardloop.pipeline.blocks import LoopConfig

        return list(LoopConfig.model_fields)
    from cardloop.cards.registry import default_registry

    return list((registry or default_registry()).get(card.type).config_model.model_fields)


def variant_pipeline(pipeline: Pipeline, variant: Variant, registry: Any = None) -> Pipeline:
    """A copy of the pipeline with the variant's settings, named after them."""
    copied = copy.deepcopy(pipeline)
    for path, value in variant.settings.items():
        card, keys = find_setting(copied, path, registry)
        target = card.config
        for key in keys[:-1]:
            inner = target.get(key)
            if inner is None:
                inner = target[key] = {}
            elif not isinstance(inner, dict):
                raise InvalidOption(f"sweep setting '{path}': config field '{key}' of card '{card.id}' is "
                                    f"{json.dumps(inner)}, not a mapping whose keys a setting could name")
            target = inner
        target[keys[-1]] = copy.deepcopy(value)
    copied.name = f"{pipeline.name} [{variant.label}]"
    return copied


def variants(settings: Mapping[str, Sequence[Any]], random: int | None = None, seed: int = 0) -> list[Variant]:
    """Every combination of the settings' values (the grid, in the order given: the last setting varies fastest),
    or with `random`, that many of them drawn without repeats with `seed`."""
    if not settings:
        raise InvalidOption("a sweep needs at least one setting, e.g. set={'opt.learning_rate': [0.001, 0.003]}")
    for path, values in settings.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidOption(f"sweep setting '{path}' needs a non-empty list of values, not {values!r}")
    grid = [dict(zip(settings, combination)) for combination in itertools.product(*settings.values())]
    if random is not None:
        if random < 1 or random > len(grid):
            raise InvalidOption(f"random={random}: a random sweep draws from 1 to {len(grid)} variants from this "
                                f"grid of {len(grid)}")
        picked = sorted(random_module.Random(seed).sample(range(len(grid)), random))
        grid = [grid[i] for i in picked]
    return [Variant(i, values) for i, values in enumerate(grid)]


# --- running -----------------------------------------------------------------------------------------------


class InProcess(Executor):
    """A pool that runs each submitted call at once, in this process (a sweep with `parallel=1`)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(error)
        return future


class DaemonThreads(Executor):
    """A pool of `size` daemon threads (a sweep on Ray): an interrupted sweep's process exits without waiting for
    the variants still running (Ray then ends the actors of a driver that is gone), and those not yet started
    never start once the pool is shut down."""

    def __init__(self, size: int):
        self.slots = threading.BoundedSemaphore(size)
        self.closed = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()

        def work() -> None:
            with self.slots:
                if self.closed:
                    future.cancel()
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
                    future.set_exception(error)

        threading.Thread(target=work, name="cardloop-sweep", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.closed = True


def run_variant(pipeline: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Run one variant (in a pool's worker): its pipeline as a dict, `cardloop.run`'s options. Returns plain
    values, {run_id, status, error}, so that any pool can send them back."""
    import cardloop
    from cardloop.pipeline.fileformat import pipeline_from_dict

    from cardloop.errors import CardFailed

    try:
        result = cardloop.run(pipeline_from_dict(pipeline), **options)
    except CardFailed as failure:
        made = getattr(failure, "result", None)
        return {"run_id": made.run_id if made is not None else None, "status": FAILED, "error": str(failure)}
    except CardloopError as error:
        return {"run_id": None, "status": FAILED, "error": str(error)}
    return {"run_id": result.run_id, "status": result.status, "error": None}


def run_variant_on_ray(pipeline: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`run_variant` with the Ray executor, in a thread of the sweep's process: its run gets a state actor of its
    own (the warm actors are kept per thread), which is ended with the run, so that it holds no CPU of the
    cluster that a later variant's actor waits for."""
    from cardloop.engine.ray_executor import stop_workers

    try:
        return run_variant(pipeline, options)
    finally:
        stop_workers(thread=threading.get_ident())


def new_sweep_id() -> str:
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def sweep(
    pipeline: Pipeline | str | Path,
    set: Mapping[str, Sequence[Any]],  # noqa: A002 - the name users write: sweep(p, set={...})
    *,
    random: int | None = None,
    seed: int = 0,
    store: str | Path | None = None,
    executor: str = "local",
    persist: str = "checkpoint",
    threads: int | None = None,
    parallel: int = 1,
    pool: Executor | None = None,
    cards: list[str | Path] | None = None,
    ray_address: str | None = None,
    artifacts: str | None = None,
    on_variant: Callable[[SweepVariant], None] | None = None,
) -> SweepResult:
    """Run `pipeline` once per variant of the settings `set` ({'<card>.<field>': [values]}): the grid, or
    `random` variants drawn from it with `seed`. Each variant is a `cardloop.run` with `executor`, `persist`
    and `threads`, recorded in `store` under a name that says its settings. `parallel` variants run at once, each
    in its own process (`parallel=1`: one after the other, in this process); `pool` runs them instead (any
    `concurrent.futures.Executor`). Without `threads`, parallel variants share the CPUs (os.cpu_count() //
    parallel threads each). With `executor="ray"` the variants run on the Ray cluster at `ray_address`
    (default: a Ray started on this machine), `parallel` at once, each run's cards on an actor of its own.
    `artifacts`: a URL (`s3://bucket/prefix`) the store keeps its artifacts at from now on, as in `cardloop.run`.
    `on_variant` is called with each variant's outcome as its run ends. Raises CardloopError before anything runs
    when a setting or a variant is invalid; a variant that fails while running is recorded `failed` and the sweep
    goes on. The sweep is recorded in the store (`RunRecords.get_sweep`)."""
    from cardloop.cards.registry import load_card_file
    from cardloop.store.artifacts import default_store_root
    from cardloop.store.records import RunRecords

    if parallel < 1:
        raise InvalidOption(f"parallel={parallel}: a sweep runs at least 1 variant at a time")
    on_ray = executor == "ray"
    if ray_address is not None and not on_ray:
        raise InvalidOption(f"ray_address is for the ray executor; this sweep's executor is '{executor}'")
    for path in cards or ():
        load_card_file(path)
    base, chosen, pipelines, plans = _planned_variants(pipeline, set, random, seed)
    root = Path(store) if store is not None else default_store_root()
    if artifacts is not None:
        from cardloop.store.location import bind_artifacts

        bind_artifacts(root, artifacts)
    if threads is None and parallel > 1 and not on_ray:  # on Ray the cards run on the cluster's CPUs
        threads = max(1, (os.cpu_count() or 1) // parallel)
    if on_ray:  # joined (or started) once, here, before any variant's thread would
        from cardloop.engine.ray_executor import connect

        connect(ray_address)
    options = {"store": str(root), "executor": executor, "persist": persist, "threads": threads,
               "cards": [str(path) for path in cards or ()], **({"ray_address": ray_address} if on_ray else {})}
    recorded = {"random": random, "seed": seed, "parallel": parallel, "executor": executor, "persist": persist,
                "threads": threads, **({"ray_address": ray_address} if on_ray else {})}
    sweep_id = new_sweep_id()
    with RunRecords(root / "runs.sqlite") as records:
        records.start_sweep(sweep_id, name=base.name, pipeline=base.to_dict(),
                            settings={path: list(values) for path, values in set.items()}, options=recorded,
                            variants=[variant.settings for variant in chosen])

        def finished(outcome: SweepVariant) -> None:
            records.finish_sweep_variant(sweep_id, outcome.index, outcome.run_id, outcome.status, outcome.error)
            if on_variant is not None:
                on_variant(outcome)

        try:
            shared_run_id = _run_shared_cards(base.name, pipelines, plans, options)
            outcomes = _run_variants(pool, parallel, [p.to_dict() for p in pipelines], chosen, options, finished,
                                     on_ray)
        except BaseException:
            records.finish_sweep(sweep_id, "cancelled")
            raise
        records.finish_sweep(sweep_id, SUCCEEDED if all(o.status == SUCCEEDED for o in outcomes) else FAILED,
                             {**recorded, "shared_run_id": shared_run_id})
    return SweepResult(sweep_id, base.name, outcomes, root, shared_run_id)


def _planned_variants(pipeline: Pipeline | str | Path, settings: Mapping[str, Sequence[Any]], random: int | None,
                      seed: int) -> tuple[Pipeline, list[Variant], list[Pipeline], list[Any]]:
    """The pipeline swept, its variants, their pipelines and their plans; CardloopError naming the setting, or
    the variant and its problems, for the first that is invalid."""
    from cardloop.engine.plan import plan_pipeline
    from cardloop.engine.run import resolve_pipeline

    base, source = resolve_pipeline(pipeline)
    for path in settings:
        find_setting(base, path)
    chosen = variants(settings, random, seed)
    pipelines = [variant_pipeline(base, variant) for variant in chosen]
    plans = []
    for variant, variant_pipe in zip(chosen, pipelines):
        try:
            plans.append(plan_pipeline(variant_pipe, source=source))
        except PipelineInvalid as invalid:
            raise PipelineInvalid([Problem(f"variant {variant.label}: {problem.message}", problem.card,
                                           problem.field) for problem in invalid.problems], source) from None
    return base, chosen, pipelines, plans


def _run_variants(pool: Executor | None, parallel: int, pipelines: list[dict[str, Any]], chosen: list[Variant],
                  options: dict[str, Any], finished: Callable[[SweepVariant], None],
                  on_ray: bool = False) -> list[SweepVariant]:
    """Run every variant in the pool (made here when none is given, and shut down after), calling `finished`
    with each outcome as it comes; the outcomes in the variants' order. On Ray the pool's workers are threads:
    the cards run on the cluster, and this process is the one Ray driver."""
    owned = pool is None
    if pool is None:
        if parallel == 1:
            pool = InProcess()
        elif on_ray:
            pool = DaemonThreads(parallel)
        else:
            pool = ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"))
    run = run_variant_on_ray if on_ray else run_variant
    try:
        found: dict[int, SweepVariant] = {}

        def collect(future: Future, variant: Variant) -> None:
            outcome = found[variant.index] = _outcome(variant, future)
            finished(outcome)

        waiting = {}
        for variant, pipeline in zip(chosen, pipelines):
            future = pool.submit(run, pipeline, options)
            if future.done():  # a pool that ran it at once (in this process): reported before the next starts
                collect(future, variant)
            else:
                waiting[future] = variant
        for future in as_completed(waiting):
            collect(future, waiting[future])
        return [found[variant.index] for variant in chosen]
    finally:
        if owned:
            pool.shutdown(cancel_futures=True)


def _outcome(variant: Variant, future: Future) -> SweepVariant:
    try:
        found = future.result()
    except Exception as error:  # noqa: BLE001 - a worker that died, or an engine bug: this variant failed
        return SweepVariant(variant.index, variant.settings, None, FAILED, f"{type(error).__name__}: {error}")
    return SweepVariant(variant.index, variant.settings, found["run_id"], found["status"], found["error"])


def shared_cards(plans: list[Any]) -> list[str]:
    """The ids of the top-level cards with the same cache key in every plan (what the variants share), in
    script order."""
    keys = [{pc.id: pc.cache_key for pc in plan.cards} for plan in plans]
    return [pc.id for pc in plans[0].cards if all(k.get(pc.id) == pc.cache_key for k in keys[1:])]


def _run_shared_cards(name: str, pipelines: list[Pipeline], plans: list[Any], options: dict[str, Any]) -> str | None:
    """Run, once, the first variant up to the last card every variant shares before the first card that trains
    (changes training state), keeping every output (persist `all`), so that the variants are served the shared
    cards from the store instead of each running them (under persist `checkpoint` a run keeps no table or batch
    that a card reads). Training is left out: under `all` it would store every step's outputs, and the
    variants' own runs keep its checkpoints. Returns the run's id; None when the variants share no such card, or
    there is one variant. A failure there is left to the variants to report."""
    first = plans[0].cards
    training = next((pc.position for pc in first if pc.card_type.mutates_state), len(first))
    positions = {pc.id: pc.position for pc in first}
    shared = [card for card in shared_cards(plans) if positions[card] < training] if len(plans) > 1 else []
    if not shared:
        return None
    ahead = copy.deepcopy(pipelines[0])
    ahead.name = f"{name} [sweep: shared cards]"
    run = run_variant_on_ray if options.get("executor") == "ray" else run_variant
    outcome = run(ahead.to_dict(), {**options, "persist": "all", "until": shared[-1]})
    return outcome["run_id"]
