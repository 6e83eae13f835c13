"""Running a pipeline: plan it, decide what to execute and what the store already holds, record the run,
execute, and return the result."""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardloop.cards.registry import Registry, card_files_of, load_card_file
from cardloop.engine.events import CardEvent, EventForwarder, RunHooks
from cardloop.engine.persist import DEFAULT_POLICY, PersistPolicy
from cardloop.engine.plan import Plan, PlannedCard, collector_paused, plan_pipeline
from cardloop.engine.record_rows import result_metrics
from cardloop.engine.resolve import (
    Missing,
    Schedule,
    final_states,
    schedule,
    unread_slots,
)
from cardloop.errors import CardFailed, CardloopError, InvalidOption, PipelineInvalid, Problem
from cardloop.kinds import ANY, STATE_KINDS
from cardloop.pipeline.fileformat import load_pipeline
from cardloop.pipeline.model import Pipeline

EXECUTORS = ("local", "process")


@dataclass
class RunResult:
    """What a run made. `outputs[card_id][port]` are live values: a model is a torch.nn.Module.

    Training state is live and shared: every card's `model` output that ran in this process is the same
    module, as the run left it. Cards served from the store (cached, or run by another process) load their
    outputs from it on first access.
    """

    run_id: str
    status: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    store_root: Path | None = None
    seconds: float = 0.0
    error: CardFailed | None = None
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)

    def metrics(self, name: str = "loss_value") -> list[float]:
        """The metric `name` of every card that made one, in script order (a block's: each iteration's)."""
        return result_metrics(self.outputs, name, self.store_root, self.run_id)


class PortValues(dict):
    """One card's outputs. A value dropped after its last use says so; a value the run did not make in this
    process is loaded from the store on first access (`fetch`)."""

    def __init__(self, card_id: str, values: dict[str, Any], released: set[str] = frozenset(),
                 ports: tuple[str, ...] = (), fetch: Callable[[str], Any] | None = None):
        super().__init__(values)
        self.card_id, self.released, self.ports, self.fetch = card_id, released, ports, fetch

    def __missing__(self, port: str) -> Any:
        if port in self.released:
            raise KeyError(f"output '{port}' of card '{self.card_id}' was released after the last card that read "
                           "it; run with keep_outputs=True to keep every value, or read it from the store "
                           "(persist 'all')")
        if self.fetch is not None and port in self.ports:
            value = self[port] = self.fetch(port)
            return value
        raise KeyError(f"card '{self.card_id}' has no output '{port}'")


class ResultOutputs(Mapping):
    """`RunResult.outputs`: card id -> PortValues, in script order, for every card that holds values after
    the run or whose outputs the store holds. Each card's PortValues is made when first asked for, and the
    store is read only for cards whose values are not in this process.

    `earlier` is what the store held before the run (it answers for the cards the run did not execute);
    `after` gives what it holds now (for the executed cards whose values are not here, such as every card the
    process executor ran)."""

    def __init__(self, plan: Plan, slots: list[Any], executed: set[int], earlier: Any,
                 after: Callable[[list[PlannedCard]], Any], loader: Any):
        from cardloop.engine.local import RELEASED

        self._plan, self._slots, self._executed, self._earlier, self._after = plan, slots, executed, earlier, after
        self._loader, self._released = loader, RELEASED
        self._made: dict[str, PortValues | None] = {}
        self._ids: list[str] | None = None
        self._stored_after: Any = None

    def __getitem__(self, card_id: str) -> PortValues:
        if card_id not in self._made:
            pc = self._plan.card(card_id)
            self._made[card_id] = self._port_values(pc) if pc is not None else None
        found = self._made[card_id]
        if found is None:
            raise KeyError(card_id)
        return found

    def __iter__(self) -> Iterator[str]:
        if self._ids is None:
            self._ids = [pc.id for pc in self._plan.cards if pc.id in self]
        return iter(self._ids)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _port_values(self, pc: PlannedCard) -> PortValues | None:
        live, released = {}, set()
        for port, slot in pc.output_slots.items():
            value = self._slots[slot]
            if value is self._released:
                released.add(port)
            elif value is not None:
                live[port] = value
        if not live and not released and self._stored(pc).prior(pc) is None:
            return None
        return PortValues(pc.id, live, released, tuple(pc.output_slots),
                          fetch=lambda port: _fetch(self._plan, pc, port, self._stored(pc), self._loader))

    def _stored(self, pc: PlannedCard) -> Any:
        """The store's view for a card: as it was before the run, unless the run executed the card."""
        if pc.position not in self._executed:
            return self._earlier
        if self._stored_after is None:
            self._stored_after = self._after([c for c in self._plan.cards if c.position in self._executed
                                              and not self._all_here(c)])
        return self._stored_after

    def _all_here(self, pc: PlannedCard) -> bool:
        return bool(pc.output_slots) and all(self._slots[s] is not None for s in pc.output_slots.values())


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
) -> RunResult:
    """Run a pipeline (object or file) and record it in the store.

    `executor`: "local" (live objects in this process) or "process" (every card in a warm worker process,
    its inputs read from the store and its outputs written back). `store`: the store root (default
    `$CARDLOOP_STORE` or `./.cardloop`). `persist`: "checkpoint" (default) or "all". `threads`: torch's CPU
    thread count. `progress`: called with a CardEvent for every run event. `cards`: extra card files.
    `keep_outputs`: keep every value in `RunResult.outputs` (by default a value that cards read is dropped
    after its last reader). `cache=False` runs every card even if the store has its outputs. `only`: run
    just this card, from the stored outputs of the cards above it; `until`: run up to and including this
    card; `from_card`: re-run this card and every card after it.
    Raises PipelineInvalid before anything runs, and CardFailed (with `.result`) when a card fails.
    """
    for path in cards or ():
        load_card_file(path)
    if executor not in EXECUTORS:
        raise InvalidOption(f"unknown executor '{executor}'; valid executors: {', '.join(EXECUTORS)}")
    pipeline, source = resolve_pipeline(pipeline_or_path)
    plan = plan_pipeline(pipeline, registry, source)
    options = RunOptions(executor, PersistPolicy.named(persist, checkpoint_seconds), threads, keep_outputs, cache,
                         only, until, from_card, workers)
    return execute_plan(plan, store=store, options=options, progress=progress,
                        card_files=card_files_of(pc.card_type for pc in plan.cards))


def _position(plan: Plan, card_id: str, option: str) -> int:
    found = plan.card(card_id)
    if found is not None:
        return found.position
    raise CardloopError(f"option '{option}' names card '{card_id}', which the pipeline does not have")


def plan_work(plan: Plan, options: RunOptions, available: Any) -> tuple[Plan, Schedule]:
    """The part of the plan this run covers and the schedule of what executes in it."""
    if options.until:
        plan = plan.truncated(_position(plan, options.until, "until"))
    if options.only:
        target = _position(plan, options.only, "only")
        work = schedule(plan, available, {target}, pull_missing=False)
        if work.missing:
            raise Missing(f"card '{options.only}' cannot run alone: the store does not hold "
                          + "; nor ".join(work.missing)
                          + " from an earlier run with the same inputs; run the pipeline up to it first, "
                            f"keeping every output (--until {options.only} --persist all)")
        return plan, work
    start = _position(plan, options.from_card, "from") if options.from_card else len(plan.cards)
    must_run = {pc.position for pc in plan.cards
                if not options.use_cache or pc.position >= start
                or not _stands_in(pc, available, options.persist)}
    if len(must_run) == len(plan.cards):  # a fresh store, or no cache: everything runs, whatever the targets
        return plan, schedule(plan, available, must_run)
    return plan, schedule(plan, available, must_run, needed_slots=unread_slots(plan),
                          needed_states=final_states(plan))


def _stands_in(pc: PlannedCard, available: Any, persist: PersistPolicy) -> bool:
    """Whether the store's executions of the card can stand in for running it: there is one and, when the run
    is to keep every output (persist 'all'), every output is kept by one of them (each value, and a snapshot of
    the state the card made). An execution under 'checkpoint' kept few: a run asked to keep everything
    recomputes the card instead of recording, as this run's, outputs that were never stored."""
    prior = available.prior(pc)
    if prior is None:
        return False
    if persist.name != "all":
        return True
    return (all(available.value(pc, port) is not None for port, output in prior.items()
                if output["kind"] not in STATE_KINDS)
            and all(available.state(group, version, pc) is not None for group, version in pc.states_made.items()))


def check_storable(plan: Plan, work: Schedule, options: RunOptions) -> dict[int, dict[str, str]]:
    """Refuse, before any card runs, a run that would have to store an output of a kind no codec can store:
    training state (it is snapshotted), and values the persist policy or the process executor writes (the
    results; under `all` or the process executor, every value). Left to the end, the run would fail after all
    its work, in the recorder. A value of kind `any` can only be checked by its type: returns {position:
    {port: why it is stored}} for those the run stores, which the card that makes them checks (state_guard)."""
    from cardloop.store.codecs import has_codec

    every = options.persist.name == "all" or options.executor == "process"
    results = unread_slots(plan)
    problems, by_type = [], {}
    for pc in work.run:
        for port in pc.card_type.outputs:
            if port.kind not in STATE_KINDS and not every and pc.output_slots[port.name] not in results:
                continue
            if port.kind == ANY:
                by_type.setdefault(pc.position, {})[port.name] = _why_stored(port.kind, every)
            elif not has_codec(port.kind):
                problems.append(Problem(
                    f"card '{pc.id}' ({pc.card.type}): output '{port.name}' is of kind '{port.kind}', which no codec "
                    f"can store, and this run must store it ({_why_stored(port.kind, every)}); register a codec for "
                    f"'{port.kind}' with cardloop.store.codecs.register_codec", card=pc.id, field=port.name))
    if problems:
        raise PipelineInvalid(problems)
    return by_type


def _why_stored(kind: str, every: bool) -> str:
    if kind in STATE_KINDS:
        return "training state is snapshotted"
    return "every output is stored" if every else "no card reads it, so it is a result"


def execute_plan(plan: Plan, *, store: str | Path | None, options: RunOptions,
                 progress: Callable[[CardEvent], None] | None = None, card_files: list[str] = ()) -> RunResult:
    import torch

    from cardloop.engine.recorder import RunRecorder
    from cardloop.engine.stored import NothingStored, StoreAvailability, StoreLoader
    from cardloop.store.artifacts import ArtifactStore, default_store_root
    from cardloop.store.records import RunRecords

    root = Path(store) if store is not None else default_store_root()
    artifacts = ArtifactStore(root, durable=False)
    records = RunRecords(root / "runs.sqlite")
    with collector_paused():  # what the store holds, the schedule and the run's records: a few objects per card
        available = StoreAvailability(plan, records, artifacts) if options.use_cache or options.only \
            else NothingStored()
        plan, work = plan_work(plan, options, available)
        stored_by_type = check_storable(plan, work, options)
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

    resumes = _resumes(work, records, available) if options.executor == "local" and options.use_cache else {}
    from cardloop.engine.blocks import RunServices, reset, serving

    token = serving(RunServices(hooks, plan))
    try:
        executor = _executor(options, root, card_files, resumes, stored_by_type)
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


def _executor(options: RunOptions, root: Path, card_files: list[str], resumes: dict[int, tuple],
              stored_by_type: dict[int, dict[str, str]]) -> Any:
    if options.executor == "process":
        from cardloop.engine.process import ProcessExecutor

        return ProcessExecutor(root, options, card_files, stored_by_type)
    from cardloop.engine.local import LocalExecutor

    return LocalExecutor(options.keep_outputs, resumes, stored_by_type)


def _resumes(work: Schedule, records: Any, available: Any) -> dict[int, tuple]:
    """For the cards about to run that an earlier run stopped inside, after a checkpoint taken there (their
    context's `checkpoint`) that still decodes, and never finished: {position: (step, {group: members}, extra)},
    to go on from."""
    import json

    keys = records.cache_keys_with_progress()
    found = {}
    for pc in work.run if keys else ():
        if pc.cache_key in keys and available.prior(pc) is None:
            step, groups, extra = records.latest_card_progress(pc.cache_key)
            if all(available.decodes(members) for members in groups.values()):
                found[pc.position] = (step, groups, json.loads(extra))
    return found


def _fetch(plan: Plan, pc: PlannedCard, port: str, stored: Any, loader: Any) -> Any:
    """An output of a card that did not run in this process, from the store."""
    name = pc.state_outputs.get(port)
    if name is not None:
        group = plan.states[name].group
        version = pc.states_made.get(group)
        found = stored.state(group, version, pc) if version is not None else None
        if found is None:
            raise KeyError(f"the state '{name}' as card '{pc.id}' left it is not in the store "
                           "(only checkpoints and the final state are kept under persist 'checkpoint')")
        return loader.state(found, restore_random=False)[name]
    found = stored.value(pc, port)
    if found is None:
        raise KeyError(f"output '{port}' of card '{pc.id}' is not in the store under this run's persist policy")
    return loader.value(found)
