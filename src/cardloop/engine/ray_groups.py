"""Independent training-state groups on actors of their own, at the same time (docs/ray.md, "What runs where").

A run whose scheduled cards (those not run as data tasks) work on two or more state groups is cut into stages
(`stages`): a *prelude* of cards that feed several groups, then one *segment* per group (the cards that read or
change that group only, and the cards without state that feed only it), then the *join*: every card that works
on several groups, reads what another segment made, or comes after such a card on one of its groups. The
prelude runs first, the segments then together, each on an actor of its own (`run_stages`), the join last; the
prelude and the join on the actor of the first group. What crosses stages goes through the store (the actor
writes what a card outside its call reads). Every card's events are replayed onto the run's hooks in script
order, whichever segment sent them first, so the run's records are those of one call.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from cardloop.engine.messages import CardOutcome
from cardloop.engine.plan import PlannedCard
from cardloop.errors import CardFailed

PRELUDE, JOIN = "", None  # the homes of the stages around the segments (a segment's home: its group's name)


@dataclass
class Stages:
    """A run's cards by stage, each in script order; `segments` by group, in the order of their first card."""

    prelude: list[PlannedCard] = field(default_factory=list)
    segments: dict[str, list[PlannedCard]] = field(default_factory=dict)
    join: list[PlannedCard] = field(default_factory=list)


def stages(cards: list[PlannedCard]) -> Stages | None:
    """The stages of `cards` (scheduled, in script order); None when fewer than two segments would run at once,
    or when a card has a `when` (its gate is decided within one call)."""
    if (len({group for pc in cards for group in (*pc.states_seen, *pc.states_made)}) < 2
            or any(pc.condition is not None for pc in cards)):
        return None  # one state group (or none): nothing to cut, at the cost of one look at each card
    scheduled = {pc.position for pc in cards}
    touched = {pc.position: [*pc.states_seen, *(g for g in pc.states_made if g not in pc.states_seen)]
               for pc in cards}
    readers: dict[int, list[int]] = {}
    for pc in cards:
        for binding in pc.bindings:
            if binding.source in scheduled:
                readers.setdefault(binding.source, []).append(pc.position)
    home: dict[int, str | None] = {}
    for pc in reversed(cards):  # a card without state goes with the one group its readers work on
        groups = touched[pc.position]
        if groups:
            home[pc.position] = groups[0] if len(groups) == 1 else JOIN
        else:
            homes = {home[reader] for reader in readers.get(pc.position, [])}
            home[pc.position] = homes.pop() if len(homes) == 1 and homes != {JOIN} else PRELUDE
    found, joined, final = Stages(), set(), {}
    for pc in cards:  # then each card after what it reads, and after the join's work on its groups
        place = home[pc.position]
        sources = {final[b.source] for b in pc.bindings if b.source in final} - {PRELUDE}
        if place == PRELUDE and sources:
            place = sources.pop() if len(sources) == 1 else JOIN
        elif place and sources - {place}:
            place = JOIN
        if place and place in joined:
            place = JOIN
        if place is JOIN:
            joined.update(touched[pc.position])
        final[pc.position] = place
        if place is JOIN:
            found.join.append(pc)
        elif place == PRELUDE:
            found.prelude.append(pc)
        else:
            found.segments.setdefault(place, []).append(pc)
    return found if len(found.segments) > 1 else None


class _Stop(Exception):
    """A stage's thread ends: the run is being stopped."""


def run_stages(found: Stages, workers: list[Any], walk: Any, replay: Callable[[Any, dict], bool]) -> None:
    """Run the stages: the prelude on `workers[0]`, then each segment on its own worker (RayWorker, in a thread of
    its own), together, then the join on `workers[0]`. Events are replayed in script order (`replay(walk, event)`)
    in this thread. The other segments' workers are ended when their segment ends; a failure, or anything raised here
    (Ctrl-C, a cancelled run), ends every worker, which stops what runs on it."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    lock, stopping = threading.Lock(), threading.Event()  # lock: the stages' threads' use of `walk`

    def send(event: dict) -> None:
        if stopping.is_set():
            raise _Stop
        events.put(event)
        if "outcome" in event and "error" in event:  # the call stops at a failing card: so does the stage
            raise CardFailed(event.get("card") or "", event.get("type") or "", event["error"])
        if "outcome" in event:  # what it stored, for the next stage's tasks, which may be made before the
            with lock:  # run's thread replays it (its events wait for the cards before it in the script)
                walk.view.add(walk.plan.cards[event["outcome"]], CardOutcome.from_json(event))

    def segment(worker: Any, cards: list[PlannedCard], errors: list) -> None:
        try:
            if cards and not stopping.is_set():
                worker.run_segment(walk, cards, send, lock)
            if worker is not workers[0]:  # its CPU to a segment still waiting for one
                worker.halt()
        except BaseException as exc:  # noqa: BLE001  (handed to the run's thread)
            errors.append(exc)

    def orchestrate() -> None:
        errors: list[BaseException] = []
        segment(workers[0], found.prelude, errors)
        if not errors:
            threads = [threading.Thread(target=segment, args=(worker, cards, errors), daemon=True,
                                        name=f"cardloop-group-{group}")
                       for worker, (group, cards) in zip(workers, found.segments.items())]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if not errors:
            segment(workers[0], found.join, errors)
        events.put(("end", errors))

    order = [pc.position for pc in sorted([*found.prelude, *(pc for cards in found.segments.values() for pc in cards),
                                           *found.join], key=lambda pc: pc.position)]
    buffered: dict[int, list[dict]] = {position: [] for position in order}
    done: set[int] = set()
    orchestrator = threading.Thread(target=orchestrate, name="cardloop-stages", daemon=True)
    orchestrator.start()
    failed = True
    try:
        errors, at = None, 0
        while errors is None:
            try:
                item = events.get(timeout=0.5)  # a timeout, so that Ctrl-C reaches this thread
            except queue.Empty:
                continue
            if isinstance(item, tuple):
                errors = item[1]
            else:
                buffered[item.get("outcome", item.get("at", item.get("started")))].append(item)
            at = _flush(order, at, buffered, done, walk, replay)
        for position in order[at:]:  # a stage failed: what ran, in script order, then its failure
            for event in buffered[position]:
                replay(walk, event)
        real = [exc for exc in errors if not isinstance(exc, (CardFailed, _Stop))]
        if real:
            raise real[0]
        failed = bool(errors)
    finally:
        stopping.set()
        for worker in workers if failed else workers[1:]:
            worker.halt()
        orchestrator.join()


def _flush(order: list[int], at: int, buffered: dict[int, list[dict]], done: set[int], walk: Any,
           replay: Callable[[Any, dict], bool]) -> int:
    """Replay the buffered events of the cards from `order[at]` on, in order, up to the first card whose outcome
    has not come yet; returns its index. No lock is held meanwhile, so that a slow hook holds back no stage: what
    the replay adds to `walk.view`, a stage's thread has added already (the same entries)."""
    while at < len(order):
        position = order[at]
        while buffered[position]:
            if replay(walk, buffered[position].pop(0)):
                done.add(position)
        if position not in done:
            break
        at += 1
    return at
