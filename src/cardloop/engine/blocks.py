"""Running a block: its body, iteration after iteration, as the cards of a hand-written loop would (docs/blocks.md).

A block is one card of the plan around it. When it runs, its body is planned once (`body_plan`) and prepared
once, like the local executor prepares a plan; then every iteration fills the ports card's slots (the block's
inputs, the iteration's number, the carried values, the iterator's item) and calls the body's cards in script
order on one list of slots. A slot keeps its value until the next iteration writes it again, as a loop's
variables do: last step's loss and its graph stay alive until this step's replace them (Plan.releases says why
that matters for speed).

Training state is threaded by identity, as in a flat script: the body's cards work on the live objects. A card
whose `when` does not hold, or that needs a value a skipped card did not make, is skipped: its value outputs
hold SKIPPED and its state outputs the state as it received it.

What a body card did is kept per card of the body (`IterationStats`): its status, seconds, iteration and metric
values, a few bytes per execution, written to the run records when the block ends. Events for body cards (their
path is `epochs[3].batches[7].fwd`) are sent only when a listener asks for them (a progress bar, the editor).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import json
import math
import re
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from cardloop.cards.spec import CardContext
from cardloop.engine.events import RunHooks, listens
from cardloop.engine.plan import Plan, PlannedCard, _plan
from cardloop.errors import CardError, CardFailed
from cardloop.kinds import MODEL, STATE_KINDS
from cardloop.pipeline.blocks import (
    ITERATION,
    OVER,
    SKIPPED,
    AllOf,
    AnyOf,
    BlockSpec,
    BlockType,
    Every,
    IterationIs,
    condition_holds,
)
from cardloop.pipeline.paths import format_path

# --- what a run offers its blocks ------------------------------------------------------------------------


@dataclass
class RunServices:
    """What the blocks of one run share: the run's hooks and plan, each loop's iteration count over the run
    (`every ... global`), the bodies prepared so far and what their cards did."""

    hooks: RunHooks | None = None
    plan: Plan | None = None
    slots: list[Any] | None = None  # the run's slots (the live training state)
    records: Any = None  # the run records (iteration checkpoints), None outside a recorded run
    available: Any = None  # what the store holds (StoreAvailability)
    loader: Any = None  # StoreLoader
    checkpoint_seconds: float = 60.0
    every_iteration: bool = False  # persist `all`: a checkpoint after every top-level iteration
    use_cache: bool = True
    fresh_from: int = 1 << 62  # blocks at or after this position run every iteration (`--from`)
    start_at: tuple[str, int] | None = None  # (top-level block, iteration): `--from 'epochs[5]'` re-runs from 5
    stop_at: str | None = None  # an iteration path: `--until 'epochs[3]'` stops the run right after it
    run_id: str | None = None  # the run's id (a worker process records iteration checkpoints under it)
    totals: dict[str, int] = field(default_factory=dict)  # by loop's static path
    #: body card executions a top-level block keeps before it writes them to the records as a chunk
    stats_chunk: int = field(default_factory=lambda: STATS_CHUNK)
    runners: dict[int, BlockRunner] = field(default_factory=dict)  # by id of the BlockSpec
    stats: dict[str, IterationStats] = field(default_factory=dict)  # by body card's static path

    def runner(self, spec: BlockSpec) -> BlockRunner:
        found = self.runners.get(id(spec))
        if found is None:
            found = self.runners[id(spec)] = BlockRunner(spec, self)
        return found

    def stored_checkpoints(self) -> set[str]:
        """The keys of every checkpoint the store holds (iteration boundaries among them), read once per run."""
        if self._stored_keys is None:
            self._stored_keys = self.records.cache_keys_with_progress() if self.records is not None else set()
        return self._stored_keys

    _stored_keys: set[str] | None = None

    def take_stats(self, block: str) -> list[IterationStats]:
        """The stats of the body cards of the top-level block `block`, taken out (its last chunk; none where the
        chunks before it hold every execution)."""
        taken = [s for path, s in self.stats.items() if path.split(".", 1)[0] == block]
        for stats in taken:
            del self.stats[stats.path]
        return [s for s in taken if s.executions or not s.taken]

    def block_stats(self, block: str) -> list[IterationStats]:
        """The stats of the body cards of the top-level block `block`, as they are."""
        return [s for path, s in self.stats.items() if path.split(".", 1)[0] == block]


class _Stop(Exception):
    """The run reached the iteration path it was told to stop after (`--until`, `--only`)."""


ITERATION_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\[(\d+)\]((?:\.[A-Za-z_][A-Za-z0-9_-]*\[\d+\])*)(\.[A-Za-z_][A-Za-z0-9_-]*)?$")


def iteration_target(text: str | None) -> tuple[str, int] | None:
    """`epochs[3]...` -> ("epochs", 3): the top-level block and iteration an iteration path starts with; None for
    the id of a card (no iteration)."""
    if not text or "[" not in text:
        return None
    found = ITERATION_PATH.match(text)
    return (found.group(1), int(found.group(2))) if found else None


def first_iteration(plan: Plan, text: str | None) -> str | None:
    """A body card's static path (`epochs.batches.fwd`) as the path of its first execution
    (`epochs[0].batches[0].fwd`); any other text as it is."""
    if not text or "[" in text or "." not in text:
        return text
    block = plan.card(text.split(".", 1)[0])
    if block is None or not isinstance(block.card_type, BlockType):
        return text
    return format_path(text, (0,) * text.count("."))


_current: contextvars.ContextVar[RunServices | None] = contextvars.ContextVar("cardloop_run", default=None)


def serving(services: RunServices) -> contextvars.Token:
    """Make `services` the current run's, for the blocks it runs; `_current.reset(token)` after."""
    return _current.set(services)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


def current() -> RunServices | None:
    """The services of the run in progress (an executor that runs blocks elsewhere sends their settings)."""
    return _current.get()


def run_block(spec: BlockSpec, config: Any, ctx: CardContext, **inputs: Any) -> dict[str, Any]:
    """A block's run function (its BlockType.run): run the body over its iterations; returns the block's outputs.
    Outside a run (a block's function called by hand), with no hooks."""
    services = _current.get() or RunServices()
    block_pc = services.plan.card(ctx.card_id) if services.plan is not None else None
    runner = services.runner(spec)
    boundaries = _Boundaries(runner, block_pc, services) if block_pc is not None else None
    try:
        outputs = runner.run(inputs, ctx, "", (), (), block_pc, boundaries=boundaries)
        if runner.stopped and block_pc is not None and services.hooks is not None:
            services.hooks.block_stopped(block_pc, services.stop_at)
        return outputs
    finally:
        if block_pc is not None and services.hooks is not None:
            services.hooks.block_stats(block_pc, services.take_stats(spec.card.id))


# --- what body cards did ---------------------------------------------------------------------------------

DONE, SKIPPED_STATUS = 1, 0
#: Body card executions a top-level block keeps in memory before it writes them to the run records as a chunk.
STATS_CHUNK = 1 << 16


class IterationStats:
    """What one body card did in every iteration: status, seconds, iteration path and metric values, in
    arrays (13 bytes and 8 per metric per execution)."""

    __slots__ = ("path", "card_type", "depth", "status", "seconds", "indices", "metric_ports", "metrics", "chunk",
                 "taken")

    def __init__(self, path: str, card_type: str, depth: int, metric_ports: tuple[str, ...], chunk: int = 0):
        self.path, self.card_type, self.depth, self.chunk = path, card_type, depth, chunk
        self.taken = False  # whether a chunk was taken out (an empty last one is then not worth a row)
        self.status = bytearray()
        self.seconds = array("f")
        self.indices = array("q")
        self.metric_ports = metric_ports
        self.metrics = tuple(array("d") for _ in metric_ports)

    def add(self, status: int, seconds: float, indices: array, outputs: Any) -> None:
        self.status.append(status)
        self.seconds.append(seconds)
        self.indices.extend(indices)
        for port, values in zip(self.metric_ports, self.metrics):
            value = outputs.get(port) if outputs is not None else None
            values.append(_number(value))

    def appenders(self) -> tuple:
        """(status, seconds, indices, ((metric port, values), ...)) appends, looked up once: the block records an
        execution that ran with them in its own loop (a call per card would cost more than the appends)."""
        return (self.status.append, self.seconds.append, self.indices.extend,
                tuple((port, values.append) for port, values in zip(self.metric_ports, self.metrics)))

    @property
    def executions(self) -> int:
        return len(self.status)

    def take(self, next_chunk: int) -> IterationStats:
        """What was recorded so far, as a chunk of its own; these arrays are emptied in place (the block's loop holds
        their appenders) and go on as chunk `next_chunk`."""
        taken = IterationStats(self.path, self.card_type, self.depth, self.metric_ports, self.chunk)
        taken.status, taken.seconds, taken.indices = bytearray(self.status), array("f", self.seconds), \
            array("q", self.indices)
        taken.metrics = tuple(array("d", values) for values in self.metrics)
        for values in (self.status, self.seconds, self.indices, *self.metrics):
            del values[:]
        self.chunk, self.taken = next_chunk, True
        return taken

    def plain(self) -> dict[str, Any]:
        """As plain data, its arrays as bytes (a worker's CardOutcome)."""
        return {"path": self.path, "card_type": self.card_type, "depth": self.depth, "chunk": self.chunk,
                "metric_ports": list(self.metric_ports), "status": bytes(self.status),
                "seconds": self.seconds.tobytes(), "indices": self.indices.tobytes(),
                "metrics": b"".join(values.tobytes() for values in self.metrics)}

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> IterationStats:
        stats = cls(data["path"], data["card_type"], data["depth"], tuple(data["metric_ports"]), data.get("chunk", 0))
        stats.status.extend(data["status"])
        stats.seconds.frombytes(data["seconds"])
        stats.indices.frombytes(data["indices"])
        size = len(stats.status) * stats.metrics[0].itemsize if stats.metrics else 0
        for n, values in enumerate(stats.metrics):
            values.frombytes(data["metrics"][n * size:(n + 1) * size])
        return stats


def _number(value: Any) -> float:
    if value is None or value is SKIPPED:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# --- the body, prepared ----------------------------------------------------------------------------------


def body_plan(spec: BlockSpec) -> Plan:
    """The body planned as a pipeline whose first card is the block's ports card."""
    return _plan(spec.checked, spec.body)


def body_cards(spec: BlockSpec) -> dict[str, PlannedCard]:
    """Every card of the block's body, nested bodies included, by static path (`epochs.steps.fwd`)."""
    found = {}
    for pc in body_plan(spec).cards[1:]:
        found[f"{spec.static_path}.{pc.id}"] = pc
        if isinstance(pc.card_type, BlockType):
            found.update(body_cards(pc.card_type.spec))
    return found


class _Entry:
    """One body card, prepared: what every iteration needs to call it. A card's run function is called with its
    arguments by position (`args`: the fixed ones in place, `inputs`: (position, slot) of the others), which
    costs a step of five cards about 1 µs less than by keyword; a nested block gets them by port name."""

    __slots__ = ("pc", "run", "args", "names", "inputs", "outputs", "condition", "nested", "stats", "state_passes",
                 "value_slots", "record")

    def __init__(self, pc: PlannedCard, run: Any, fixed: dict, condition: Any, nested: BlockRunner | None,
                 stats: IterationStats):
        self.pc, self.condition, self.nested, self.stats = pc, condition, nested, stats
        self.names = names = (*fixed, *(b.port for b in pc.bindings)) if nested is not None \
            else _positional_names(pc.card_type.run, run)
        if names is None:  # a wrapped run function (state_guard) takes its arguments by keyword
            names = (*fixed, *(b.port for b in pc.bindings))
            run = functools.partial(_by_keyword, run, names)
        self.run = run
        self.args = [fixed.get(name) for name in names]
        self.inputs = tuple((names.index(b.port), b.slot) for b in pc.bindings)
        self.outputs = tuple(pc.output_slots.items())
        by_port = {b.port: b.slot for b in pc.bindings}
        # when skipped: a state output holds the state its card received, a value output SKIPPED
        self.state_passes = tuple((pc.output_slots[p.name], by_port.get(p.state_of)) for p in pc.card_type.outputs
                                  if p.kind in STATE_KINDS)
        self.value_slots = tuple(pc.output_slots[p.name] for p in pc.card_type.outputs if p.kind not in STATE_KINDS)
        self.record = stats.appenders()


def _positional_names(function: Any, run: Any) -> tuple[str, ...] | None:
    """The parameter names of a card's run function, in order, when `run` is that function and takes them all
    by position; else None."""
    if run is not function:
        return None
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters):
        return None
    return tuple(p.name for p in parameters)


def _by_keyword(run: Any, names: tuple[str, ...], *args: Any) -> Any:
    return run(**dict(zip(names, args)))


class BlockRunner:
    """One block's body, prepared once per run; `run` runs its iterations."""

    def __init__(self, spec: BlockSpec, services: RunServices):
        from cardloop.engine.local import _prepared

        self.spec, self.services = spec, services
        self.stopped = False
        self.plan = plan = body_plan(spec)
        ports = plan.cards[0]
        self.ports = ports.output_slots
        self.id = spec.card.id
        self.static_path = spec.static_path
        self.entries: list[_Entry] = []
        for pc in plan.cards[1:]:
            path = f"{self.static_path}.{pc.id}"
            nested = services.runner(pc.card_type.spec) if isinstance(pc.card_type, BlockType) else None
            metric_ports = tuple(p.name for p in pc.card_type.outputs if p.metric)
            stats = services.stats.get(path)
            if stats is None:
                stats = services.stats[path] = IterationStats(path, pc.card.type, len(spec.path), metric_ports)
            if nested is not None:
                fixed, run = {}, None
            else:
                _, run, fixed, _, _ = _prepared(plan, pc)
            self.entries.append(_Entry(pc, run, fixed, spec.conditions.get(pc.position), nested, stats))
        self.nests = any(entry.nested is not None for entry in self.entries)
        self.slot_of = lambda position, port: plan.cards[position].output_slots[port]
        self.carry = tuple((name, init, self.ports[name], plan.cards[position].output_slots[port])
                           for name, init, position, port in spec.carry)
        self.until = plan.cards[spec.until[0]].output_slots[spec.until[1]] if spec.until else None
        self.item_ports = tuple((name, self.ports[name]) for name in spec.item_ports)
        # state outputs of the block, each with the ports-card slot of the input it continues
        self.outputs = []
        for output in spec.outputs:
            slot = plan.cards[output.position].output_slots[output.port] if output.role != "carry" else None
            origin = next((p.state_of for p in spec_outputs_ports(spec) if p.name == output.name), None)
            self.outputs.append((output, slot, self.ports.get(origin) if origin else None))

    def run(self, inputs: dict[str, Any], ctx: CardContext | None, prefix: str, counts: tuple[int, ...],
            indices: tuple[int, ...], block_pc: PlannedCard | None, chain: tuple[dict, ...] = (),
            boundaries: _Boundaries | None = None) -> dict[str, Any]:
        """Run the iterations. `prefix`: the path of the enclosing iteration (`epochs[3].`); `counts`: the
        enclosing loops' 1-based iteration numbers; `indices`: their 0-based ones; `block_pc`: the top-level
        block (its progress events), `chain`: the enclosing loops' progress."""
        config, hooks = self.spec.config, self.services.hooks
        forward = hooks is not None and listens(hooks, "body_card_finished")
        slots: list[Any] = [None] * self.plan.slot_count
        for name, value in inputs.items():
            if name != OVER and name in self.ports:
                slots[self.ports[name]] = value
        iterator = inputs.get(OVER)
        if iterator is not None:
            count = len(iterator)
        elif config.times is not None:
            count = config.times
        else:
            count = config.max if config.until is not None else 1
        carried = {name: init for name, init, _, _ in self.carry}
        collected: dict[str, list] = {o.name: [] for o, _, _ in self.outputs if o.role == "collect"}
        start, stop = 0, False
        found = boundaries.resume_point(count, inputs) if boundaries is not None else None
        if found is not None:
            step, extra = found
            start, stop = step + 1, extra.get("stopped", False)
            carried.update(extra.get("carry", {}))
            for name, values in extra.get("collected", {}).items():
                collected[name] = list(values)
            for output, slot, origin in self.outputs:
                if output.role == "last" and slot is not None:
                    slots[slot] = None
        if boundaries is not None:  # the top-level block: its stats' first chunk starts where it starts
            for stats in self.services.block_stats(self.id):
                stats.chunk = start
        report = block_pc is not None and hooks is not None and listens(hooks, "block_progress")
        try:
            self._loop(slots, iterator, start, count if not stop else start, count, prefix, counts, indices, chain,
                       carried, collected, block_pc if report else None, boundaries, forward)
        except _Stop:
            if prefix:
                raise
            self.stopped = True
        return self._outputs(slots, carried, collected)

    def _loop(self, slots: list[Any], iterator: Any, start: int, end: int, count: int, prefix: str,
              counts: tuple[int, ...], indices: tuple[int, ...], chain: tuple[dict, ...], carried: dict,
              collected: dict, block_pc: PlannedCard | None, boundaries: _Boundaries | None, forward: bool) -> None:
        """Iterations start..end-1 (of `count`); `block_pc`: the top-level block, when its progress is listened to."""
        hooks, services = self.services.hooks, self.services
        total_key, iteration_slot, stop_after = self.static_path, self.ports[ITERATION], services.stop_at
        for i in range(start, end):
            stop = False
            slots[iteration_slot] = i
            if iterator is not None:
                item = iterator.item(i)
                for name, slot in self.item_ports:
                    slots[slot] = item[name]
            for name, _, slot, _ in self.carry:
                slots[slot] = carried[name]
            services.totals[total_key] = services.totals.get(total_key, 0) + 1
            where = f"{prefix}{self.id}[{i}]."
            # the enclosing loops' progress, for nested blocks and progress events (a dict a step costs in context)
            here = (*chain, {"block": self.id, "index": i, "total": count}) if block_pc is not None or self.nests \
                else chain
            self._iteration(slots, where, (*counts, i + 1), (*indices, i), forward, block_pc, here)
            for name, _, _, next_slot in self.carry:
                value = slots[next_slot]
                if value is not SKIPPED:
                    carried[name] = value
            for output, slot, origin in self.outputs:
                value = slots[slot] if slot is not None else None
                if output.role == "collect":
                    collected[output.name].append(None if value is SKIPPED else _detached(value))
                elif output.role == "state" and origin is not None and value is not None and value is not SKIPPED:
                    slots[origin] = value  # the next iteration sees the state as this one left it
            if self.until is not None:
                flag = slots[self.until]
                stop = flag is not SKIPPED and flag is not None and bool(flag)
            if boundaries is not None:
                boundaries.passed(i, {"carry": carried, "collected": collected, "stopped": stop})
            if block_pc is not None:
                hooks.block_progress(block_pc, {"iterations": list(here), "metrics": self._metrics()})
            if boundaries is not None:
                self._flush_stats(boundaries.pc, i + 1)
            if stop_after is not None and where[:-1] == stop_after:
                raise _Stop
            if stop:
                break

    def _flush_stats(self, block_pc: PlannedCard, next_iteration: int) -> None:
        """Hand what the body cards did to the run's records as a chunk once it holds STATS_CHUNK executions, so a
        long block's memory stays flat (a top-level block, after an iteration)."""
        stats = self.services.block_stats(self.id)
        if sum(len(s.status) for s in stats) < self.services.stats_chunk:
            return
        chunks = [s.take(next_iteration) for s in stats]
        if self.services.hooks is not None:
            self.services.hooks.block_stats(block_pc, chunks)

    def _outputs(self, slots: list[Any], carried: dict, collected: dict) -> dict[str, Any]:
        """The block's outputs after its iterations: lists, carried values, and training state (for a state the
        body continues, the input's when no iteration made it)."""
        outputs: dict[str, Any] = {}
        for output, slot, origin in self.outputs:
            if output.role == "collect":
                outputs[output.name] = collected[output.name]
            elif output.role == "carry":
                outputs[output.name] = carried[output.name]
            else:
                value = slots[slot] if slot is not None else None
                if (value is None or value is SKIPPED) and origin is not None:
                    value = slots[origin]
                outputs[output.name] = None if value is SKIPPED else value
        return outputs

    def _iteration(self, slots: list[Any], prefix: str, counts: tuple[int, ...], indices: tuple[int, ...],
                   forward: bool, block_pc: PlannedCard | None, chain: tuple[dict, ...]) -> None:
        services = self.services
        hooks, stop_after = services.hooks, services.stop_at
        clock = time.perf_counter
        row = array("q", indices)  # each card's stats extend their indices by it: an array copies, a tuple converts
        for entry in self.entries:
            condition = entry.condition
            if condition is not None and not condition_holds(condition, self.slot_of, slots, counts,
                                                             self._totals(counts)):
                self._skip(entry, slots, prefix, row, forward)
                continue
            args = entry.args.copy()
            skipped = False
            for position, slot in entry.inputs:
                value = slots[slot]
                if value is SKIPPED:
                    skipped = True
                    break
                args[position] = value
            if skipped:
                self._skip(entry, slots, prefix, row, forward)
                continue
            if forward:
                hooks.body_card_started(prefix + entry.pc.id, entry.pc)
            started = clock()
            if entry.nested is not None:
                outputs = entry.nested.run(dict(zip(entry.names, args)), None, prefix, counts, indices, block_pc,
                                           chain)
            else:
                try:
                    outputs = entry.run(*args)
                except CardFailed:
                    raise
                except Exception as exc:
                    raise self._failed(entry, prefix, exc) from exc
            seconds = clock() - started
            try:
                for name, slot in entry.outputs:
                    slots[slot] = outputs[name]
            except (KeyError, TypeError) as exc:
                raise self._failed(entry, prefix, CardError(f"its run function returned no value for output(s) "
                                                            f"{[n for n, _ in entry.outputs]}")) from exc
            status, times, extend, metrics = entry.record
            status(DONE)
            times(seconds)
            extend(row)
            for port, append in metrics:
                value = outputs.get(port)
                append(value if type(value) is float else _number(value))
            if forward:
                hooks.body_card_finished(prefix + entry.pc.id, entry.pc, "done", seconds, outputs)
            if stop_after is not None and prefix + entry.pc.id == stop_after:
                raise _Stop

    def _totals(self, counts: tuple[int, ...]) -> list[int]:
        """Each enclosing loop's iteration count over the run (for `every ... global`)."""
        paths = [".".join(self.spec.path[: depth + 1]) for depth in range(len(counts))]
        return [self.services.totals.get(path, 0) for path in paths]

    def _skip(self, entry: _Entry, slots: list[Any], prefix: str, indices: array, forward: bool) -> None:
        for slot in entry.value_slots:
            slots[slot] = SKIPPED
        for slot, source in entry.state_passes:
            slots[slot] = slots[source] if source is not None else SKIPPED
        entry.stats.add(SKIPPED_STATUS, 0.0, indices, None)
        if forward:
            self.services.hooks.body_card_finished(prefix + entry.pc.id, entry.pc, "skipped", 0.0, None)

    def _failed(self, entry: _Entry, prefix: str, exc: Exception) -> CardFailed:
        from cardloop.engine.local import _describe

        return CardFailed(prefix + entry.pc.id, entry.pc.card.type, _describe(exc))

    def _metrics(self) -> dict[str, float]:
        """The latest value of each metric of the body's cards (a progress event's)."""
        metrics = {}
        for entry in self.entries:
            for port, values in zip(entry.stats.metric_ports, entry.stats.metrics):
                if values and not math.isnan(values[-1]):
                    metrics[port] = values[-1]
        return metrics


#: The group name of a carried model's snapshot in a block's checkpoint: `carry:<name>`.
CARRIED = "carry:"


class _Boundaries:
    """A top-level block's iteration boundaries: each has a key, and may have a checkpoint in the store (its
    training state, carried values and collected outputs) from which a run goes on (docs/blocks.md, Resume).

    The key of the boundary after iteration i chains the key before it with what iteration i computes as the
    block plans it: J(-1) covers the block's inputs (the keys of the values and state versions it receives), its
    `until` and carried values; J(i) = sha256(J(i-1), the body's cards that may run in iteration i). A card
    whose `when` counts this loop's iterations, and does not hold in iteration i, is left out of J(i): changing
    a card that runs from epoch 5 on keeps the keys of epochs 0-4, whose checkpoints a later run takes up.
    `times` and `max` are in no key: a run of 20 epochs goes on from the 10 a run before it made.

    Checkpoints are written after an iteration when the run's checkpoint interval has passed, after every
    iteration of a block whose body holds a loop (an epoch), and after every iteration under persist `all`."""

    def __init__(self, runner: BlockRunner, block_pc: PlannedCard, services: RunServices):
        self.runner, self.pc, self.services = runner, block_pc, services
        self.enabled = services.records is not None and _resumable(runner.spec)
        self.every = services.every_iteration or any(e.nested is not None for e in runner.entries)
        self.next_due = time.perf_counter() + services.checkpoint_seconds
        self._keys: list[str] = []
        if self.enabled:
            self._first = self._start_key()
            self._static = _static_keys(runner)

    def key(self, i: int) -> str:
        """J(i), the key of the boundary after iteration i."""
        while len(self._keys) <= i:
            n = len(self._keys)
            previous = self._keys[-1] if self._keys else self._first
            parts = _planned(self._static, n)
            self._keys.append(hashlib.sha256("\n".join([previous, *parts]).encode()).hexdigest())
        return self._keys[i]

    def _start_key(self) -> str:
        from cardloop.engine.resolve import _index

        plan, pc = self.services.plan, self.pc
        index = _index(plan)
        parts = [json.dumps({"until": self.runner.spec.config.until,
                             "carry": self.runner.spec.config.model_dump(mode="json")["carry"]}, sort_keys=True)]
        parts += [f"{b.port}={plan.cards[b.source].cache_key}:{b.source_port}" for b in pc.bindings]
        parts += [f"{group}@{plan.cards[index.maker[(group, version)]].cache_key}"
                  for group, version in sorted(pc.states_seen.items())]
        parts.append(self.runner.spec.static_path)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def resume_point(self, count: int, inputs: dict[str, Any]) -> tuple[int, dict] | None:
        """The last boundary before `count` whose checkpoint the store holds and decodes, restored into the live
        training state: (iteration, extra), or None to start at iteration 0."""
        services = self.services
        if not self.enabled or not services.use_cache or self.pc.position >= services.fresh_from:
            return None
        stored = services.stored_checkpoints()
        last = services.records.last_progress_step(self.pc.id) if stored else None
        if last is None:
            return None
        start_at = services.start_at
        if start_at is not None and start_at[0] == self.pc.id:
            last = min(last, start_at[1] - 1)
        found = None
        for i in range(min(count, last + 1)):
            if self.key(i) in stored:
                found = i
        while found is not None:
            step, members, text = services.records.latest_card_progress(self.key(found))
            extra = json.loads(text)
            collected = self._collected(extra)
            if collected is not None and all(services.available.decodes(m) for m in members.values()):
                extra = {**extra, "carry": {**extra.get("carry", {}), **self._restore(members)}}
                self.last_stored = (self.key(found), {name: len(values) for name, values in collected.items()})
                return step, {**extra, "collected": collected}
            found = next((i for i in range(found - 1, -1, -1) if self.key(i) in stored), None)
        return None

    def _restore(self, groups: dict[str, dict]) -> dict[str, Any]:
        """Restore a checkpoint's training state into the live one; returns its carried models, decoded."""
        from cardloop.engine.resolve import StoredState
        from cardloop.engine.snapshot import restore_into

        plan, slots, loader = self.services.plan, self.services.slots, self.services.loader
        carried = {}
        for group, members in groups.items():
            if group.startswith(CARRIED):
                carried.update(loader.state(StoredState(members), restore_random=False))
                continue
            for name, loaded in loader.state(StoredState(members)).items():
                restore_into(slots[plan.states[name].slot], loaded)
        return carried

    def passed(self, i: int, extra: dict[str, Any]) -> None:
        """Iteration i is done: write its checkpoint when one is due. A checkpoint holds the values collected since
        the checkpoint before it, and that checkpoint's key: a run's records grow with its iterations, not with
        their square."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not (self.every or extra["stopped"] or now >= self.next_due):
            return
        self.next_due = now + self.services.checkpoint_seconds
        previous, lengths = self.last_stored
        collected = extra["collected"]
        since = {name: values[lengths.get(name, 0):] for name, values in collected.items()}
        key = self.key(i)
        carry, carried = self._carried_state(extra["carry"])
        self.services.hooks.block_checkpoint(self.pc, key, i, {**extra, "carry": carry, "collected": since,
                                                               "previous": previous}, carried)
        self.last_stored = (key, {name: len(values) for name, values in collected.items()})

    last_stored: tuple[str | None, dict[str, int]] = (None, {})

    def _carried_state(self, carry: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...]]:
        """Carried values as a checkpoint holds them: JSON ones as they are; a model (a best-model copy) encoded as
        a snapshot of its own, `carry:<name>`, its value in the JSON left None."""
        from cardloop.engine.snapshot import EncodedState, Snapshot
        from cardloop.store.codecs import CodecContext, codec_for_kind

        plain, carried = dict(carry), []
        for name in self.state_carried:
            value = carry.get(name)
            if value is None:
                continue
            codec = codec_for_kind(MODEL)
            member = EncodedState(name, MODEL, codec.name, codec.extension, codec.encode(value, CodecContext()))
            carried.append(Snapshot(CARRIED + name, 0, self.pc.position, self.pc.id, self.pc.cache_key, (member,)))
            plain[name] = None
        return plain, tuple(carried)

    @functools.cached_property
    def state_carried(self) -> tuple[str, ...]:
        """The carried values that are models."""
        spec = self.runner.spec
        return tuple(name for name, *_ in spec.carry if spec.ports_type.output(name).kind == MODEL)

    def _collected(self, extra: dict[str, Any]) -> dict[str, list] | None:
        """The values collected up to a checkpoint: its own, after those of the checkpoints before it (None when
        one of them is no longer in the store)."""
        parts, previous = [extra.get("collected", {})], extra.get("previous")
        while previous is not None:
            found = self.services.records.latest_card_progress(previous)
            if found is None:
                return None
            earlier = json.loads(found[2])
            parts.append(earlier.get("collected", {}))
            previous = earlier.get("previous")
        collected: dict[str, list] = {}
        for part in reversed(parts):
            for name, values in part.items():
                collected.setdefault(name, []).extend(values)
        return collected


def _resumable(spec: BlockSpec) -> bool:
    """Whether a checkpoint can hold what the block carries: carried values of kinds JSON holds, or models (their
    own snapshots), and collected outputs of kinds JSON holds."""
    from cardloop.store.codecs import has_codec
    from cardloop.store.json_codecs import JSON_ITEM_KINDS

    for output in spec_outputs_ports(spec):
        kind = output.kind.removeprefix("list:") if output.kind.startswith("list:") else None
        if kind is not None and not has_codec(output.kind):
            return False
    return all(spec.ports_type.output(name).kind in (*JSON_ITEM_KINDS, "any", MODEL) for name, *_ in spec.carry)


def _card_key(pc: PlannedCard) -> str:
    """What a body card computes, whatever the iteration: its type and code, config, links and condition (a
    nested block: its own settings; its cards come after it)."""
    card = pc.card
    return json.dumps([card.id, pc.card_type.id, "" if isinstance(pc.card_type, BlockType) else pc.card_type.code_hash,
                       pc.card_type.version, pc.config.model_dump(mode="json"), card.inputs, card.when],
                      sort_keys=True, default=str)


def _static_keys(runner: BlockRunner) -> list[tuple[Any, Any]]:
    """(condition, key) for each body card, with a nested block's list in place of its key."""
    return [(entry.condition, [(None, _card_key(entry.pc)), *_static_keys(entry.nested)]
             if entry.nested is not None else _card_key(entry.pc)) for entry in runner.entries]


def _planned(static: list[tuple[Any, Any]], i: int) -> list[str]:
    """The keys of the body cards that may run in top-level iteration i (nested bodies included)."""
    keys = []
    for condition, key in static:
        if _may_run(condition, i):
            keys += ["[", *_planned(key, i), "]"] if isinstance(key, list) else [key]
    return keys


def _may_run(condition: Any, i: int) -> bool:
    """Whether a card with this condition may run in iteration i of the top-level loop, as far as the
    iteration's number tells: False only for a condition on that number that does not hold."""
    if condition is None:
        return True
    if type(condition) is Every and condition.depth == 0:
        return (i + 1) % condition.k == 0
    if type(condition) is IterationIs and condition.depth == 0:
        return condition_holds(condition, None, [], [i + 1], [i + 1])
    if type(condition) is AllOf:
        return all(_may_run(c, i) for c in condition.conditions)
    if type(condition) is AnyOf:
        return any(_may_run(c, i) for c in condition.conditions)
    return True


def spec_outputs_ports(spec: BlockSpec) -> tuple:
    """The block type's output ports, as checking made them (role, kind, state_of)."""
    from cardloop.pipeline.blocks import _output_port

    return tuple(_output_port(o, spec.checked, spec.body, spec.ports_type) for o in spec.outputs)


def _detached(value: Any) -> Any:
    """A collected value keeps no autograd graph alive (a list of every step's graphs would fill the memory)."""
    if type(value) is float:  # the common case, a loss value: no attribute look-ups
        return value
    detach = getattr(value, "detach", None)
    return detach() if detach is not None and getattr(value, "requires_grad", False) else value
