"""Data cards as Ray tasks, independent ones in parallel, before the state actor's call (docs/ray.md).

Which cards (`task_waves`): those of category `data` that hold no training state (no input or output of a state
kind), are no loop block, have no `when`, and whose inputs come only from such cards or from the store, grouped
in waves of cards that do not depend on each other; and only when some wave has two cards or more, since a
task's outputs must go through the store, which the state actor's call would have kept live. Each card runs as
a Ray task (`run_card`: a Worker, reused by the task's process, on a one-card CardTask), a wave's tasks launched
together; the run replays their outcomes onto its hooks through the same CardWalk, in script order, and the state
actor's call then loads what they stored.
"""

from __future__ import annotations

import functools
import queue
from typing import Any

from cardloop.engine.messages import CardOutcome, CardTask, TaskFailure
from cardloop.engine.plan import PlannedCard
from cardloop.engine.process import CardWalk
from cardloop.engine.resolve import Schedule
from cardloop.kinds import STATE_KINDS
from cardloop.pipeline.blocks import BlockType

#: the category of the cards that may run as tasks
TASK_CATEGORY = "data"


def task_waves(work: Schedule) -> list[list[PlannedCard]]:
    """The scheduled cards that run as Ray tasks, in waves (each wave's cards depend only on earlier waves or the
    store), in script order; none when no wave has two cards (nothing would run in parallel)."""
    scheduled = work.run_positions
    depth: dict[int, int] = {}
    for pc in work.run:
        sources = {binding.source for binding in pc.bindings}
        if stateless_data(pc) and all(source in depth or source not in scheduled for source in sources):
            depth[pc.position] = 1 + max((depth[source] for source in sources if source in depth), default=-1)
    waves: list[list[PlannedCard]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for pc in work.run:
        if pc.position in depth:
            waves[depth[pc.position]].append(pc)
    return waves if any(len(wave) > 1 for wave in waves) else []


def stateless_data(pc: PlannedCard) -> bool:
    """Whether a card may run as a task: a data card, no loop block, no `when`, no training state in or out."""
    card_type = pc.card_type
    return (getattr(card_type, "category", None) == TASK_CATEGORY and not isinstance(card_type, BlockType)
            and pc.condition is None and not pc.states_seen and not pc.state_outputs
            and not any(port.kind in STATE_KINDS for port in (*card_type.inputs, *card_type.outputs)))


_task_actors: dict[tuple, Any] = {}


def run_card(args: tuple, task: dict) -> dict:
    """The body of a card's Ray task: run a one-card task (CardTask.to_json) on this process's Worker for `args`
    (the state actor's: store, threads, card files, artifacts URL), made once per process (Ray reuses its worker
    processes), and answer with the card's reports and outcome as plain JSON data."""
    from cardloop.engine.ray_executor import CardActor

    key = (args[0], args[1], tuple(args[2]), args[3])
    actor = _task_actors.get(key)
    if actor is None:
        actor = _task_actors[key] = CardActor(*args)
    reports = actor.events = queue.SimpleQueue()
    outcome = actor.worker.handle(CardTask.from_json(task))
    return {"reports": [reports.get() for _ in range(reports.qsize())], "outcome": outcome.to_json()}


@functools.cache
def remote_run_card(ray: Any) -> Any:
    """`run_card` as a Ray remote function, made once (Ray exports a remote function's code once)."""
    return ray.remote(run_card)


def run_waves(ray: Any, walk: CardWalk, waves: list[list[PlannedCard]], args: tuple,
              options: dict[int, dict[str, Any]], retries: int) -> None:
    """Run the waves' cards as Ray tasks (`options`: each one's Ray options, by its card's position), a wave's
    launched together and awaited with ray.wait, each card's start, reports and outcome replayed onto the run's
    hooks in script order (the cards that succeeded first, then the first failure: CardFailed naming it). A task whose process dies is retried `retries` times; anything raised
    while a wave runs (Ctrl-C, a cancelled run) cancels its tasks."""
    from cardloop.engine.ray_executor import _replay

    remote = remote_run_card(ray)
    for wave in waves:
        refs = []
        for pc in wave:
            task = walk.task([pc], with_pipeline=True).to_json()
            _replay(walk, {"started": pc.position})
            refs.append(remote.options(max_retries=retries, **options[pc.position]).remote(args, task))
        try:
            ray.wait(refs, num_returns=len(refs))
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        answers = [(pc, answer(ray, pc, ref, retries)) for pc, ref in zip(wave, refs)]
        for pc, found in sorted(answers, key=lambda item: "error" in item[1]["outcome"]):
            for report in found["reports"]:
                _replay(walk, {"at": pc.position, **report})
            _replay(walk, {"outcome": pc.position, **found["outcome"]})


def answer(ray: Any, pc: PlannedCard, ref: Any, retries: int) -> dict:
    """A finished task's answer; a task Ray could not finish (its process died on every try) as the card's
    failure."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        reason = (f"the process of the Ray task running it died {retries + 1} times; run again to resume from the "
                  "stored outputs" if isinstance(exc, (ray.exceptions.WorkerCrashedError,
                                                       ray.exceptions.NodeDiedError))
                  else f"its Ray task failed: {exc}")
        failure = CardOutcome(failure=TaskFailure(reason, pc.id, pc.card.type))
        return {"reports": [], "outcome": failure.to_json()}
