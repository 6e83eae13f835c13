"""Executors: what runs the cards a run schedules (docs/design.md, Executors), and the registry that names them.

`cardloop.run(executor=NAME)`, the CLI's `--executor` and the server's run options take the registered names.
The built-in `local`, `process` and `ray` are registered here; `register_executor` adds another (or replaces one).
An executor's module is imported only when a run uses it: this module imports neither torch nor the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from cardloop.errors import InvalidOption

if TYPE_CHECKING:
    from cardloop.engine.events import RunHooks
    from cardloop.engine.plan import Plan
    from cardloop.engine.resolve import Schedule
    from cardloop.engine.run import RunOptions


class Executor(Protocol):
    """Runs a schedule's cards, reporting each of them to the run's hooks."""

    name: str

    def run(self, plan: Plan, hooks: RunHooks, slots: list[Any], schedule: Schedule, loader: Any, /) -> list[Any]:
        """Execute `schedule.run` in order, taking what the schedule says from the store (`loader`); report
        every card to `hooks` (`card_done` with its live outputs, or `card_stored` with what it stored
        elsewhere). Returns the value slots, holding what is live in this process. Raises CardFailed naming the
        card that failed."""
        ...


@dataclass(frozen=True)
class ExecutorSetup:
    """What a run gives an executor's factory."""

    #: the store the run records in, and where cards run elsewhere read their inputs and write their outputs
    store_root: Path
    #: the run's options: threads, persist policy, keep_outputs, ...
    options: RunOptions
    #: card files loaded in this process, which cards run in another process must load too
    card_files: list[str]
    #: {position: {port: why}}: outputs of kind `any` the run stores, which the making card checks by type
    stored_by_type: dict[int, dict[str, str]]
    #: {position: (step, {group: snapshot members}, extra)}: cards that go on from a checkpoint taken inside
    #: them in an earlier run; empty unless the executor is registered with `resumes_checkpoints`
    resumes: dict[int, tuple]


@dataclass(frozen=True)
class ExecutorEntry:
    """A registered executor: how to make it, and what the run must know of it before it starts."""

    name: str
    factory: Callable[[ExecutorSetup], Executor]
    #: a few words for `--executor`'s help
    summary: str = ""
    #: it stores every output a card makes (to hand it to the next card): each must have a codec
    stores_every_output: bool = False
    #: it goes on from the checkpoints cards take inside themselves (`ExecutorSetup.resumes`)
    resumes_checkpoints: bool = False
    #: called with (plan, schedule, run options) before the run is recorded: raises InvalidOption to refuse it
    check: Callable[[Plan, Schedule, RunOptions], None] | None = None


_executors: dict[str, ExecutorEntry] = {}


def register_executor(name: str, factory: Callable[[ExecutorSetup], Executor], *, summary: str = "",
                      stores_every_output: bool = False, resumes_checkpoints: bool = False,
                      check: Callable[[Plan, Schedule, RunOptions], None] | None = None) -> None:
    """Make `factory` the executor called `name`: runs given `executor=name` get `factory(setup)`; `check`
    refuses a run (InvalidOption) before it is recorded."""
    _executors[name] = ExecutorEntry(name, factory, summary, stores_every_output, resumes_checkpoints, check)


def executor_names() -> list[str]:
    """The registered executors' names, in the order they were registered."""
    return list(_executors)


def executor_entry(name: str) -> ExecutorEntry:
    """The executor registered as `name`; InvalidOption naming the registered ones if there is none."""
    found = _executors.get(name)
    if found is None:
        raise InvalidOption(f"unknown executor '{name}'; valid executors: {', '.join(_executors)}")
    return found


def make_executor(name: str, setup: ExecutorSetup) -> Executor:
    """The executor registered as `name`, made for one run."""
    return executor_entry(name).factory(setup)


def executors_help() -> str:
    """The registered executors with their summaries, for `--executor`'s help."""
    return " or ".join(f"{entry.name} ({entry.summary})" if entry.summary else entry.name
                       for entry in _executors.values())


def _local(setup: ExecutorSetup) -> Executor:
    from cardloop.engine.local import LocalExecutor

    return LocalExecutor(setup.options.keep_outputs, setup.resumes, setup.stored_by_type)


def _process(setup: ExecutorSetup) -> Executor:
    from cardloop.engine.process import ProcessExecutor

    return ProcessExecutor(setup)


def _ray(setup: ExecutorSetup) -> Executor:
    from cardloop.engine.ray_executor import RayExecutor

    return RayExecutor(setup)


def _ray_check(plan: Plan, schedule: Schedule, options: RunOptions) -> None:
    from cardloop.engine.ray_executor import check_placement

    check_placement(plan, schedule, options)


register_executor("local", _local, summary="this process", resumes_checkpoints=True)
register_executor("process", _process, summary="a warm worker process per card, state through the store",
                  stores_every_output=True)
register_executor("ray", _ray, summary="a Ray actor that keeps the training state, on a local Ray or --ray-address",
                  stores_every_output=True, check=_ray_check)
