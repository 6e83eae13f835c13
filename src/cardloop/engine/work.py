"""What a run covers and what it executes: the part of the plan its options select, the cards that must run
(the rest the store stands in for), the outputs it must be able to store, and the checkpoints it goes on from.
Torch-free."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cardloop.engine.persist import PersistPolicy
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.resolve import Missing, Schedule, final_states, schedule, unread_slots
from cardloop.errors import CardloopError, PipelineInvalid, Problem
from cardloop.kinds import ANY, STATE_KINDS

if TYPE_CHECKING:
    from cardloop.engine.run import RunOptions


def _position(plan: Plan, card_id: str, option: str) -> int:
    """The position of a card, or of the top-level block an iteration path (`epochs[3].batches[7].fwd`) is in."""
    from cardloop.engine.blocks import iteration_target

    target = iteration_target(card_id)
    found = plan.card(target[0] if target else card_id)
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


def check_storable(plan: Plan, work: Schedule, persist: PersistPolicy,
                   stores_every_output: bool) -> dict[int, dict[str, str]]:
    """Refuse, before any card runs, a run that would have to store an output of a kind no codec can store:
    training state (it is snapshotted), and values the persist policy or the executor writes (the results;
    under `all`, or with an executor that stores every output such as `process`, every value). Left to the end,
    the run would fail after all its work, in the recorder. A value of kind `any` can only be checked by its type:
    returns {position: {port: why it is stored}} for those the run stores, which the card that makes them checks
    (state_guard)."""
    from cardloop.store.codecs import has_codec

    every = persist.name == "all" or stores_every_output
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


def checkpoint_resumes(work: Schedule, records: Any, available: Any) -> dict[int, tuple]:
    """For the cards about to run that an earlier run stopped inside, after a checkpoint taken there (their
    context's `checkpoint`) that still decodes, and never finished: {position: (step, {group: members}, extra)},
    to go on from."""
    keys = records.cache_keys_with_progress()
    found = {}
    for pc in work.run if keys else ():
        if pc.cache_key in keys and available.prior(pc) is None:
            step, groups, extra = records.latest_card_progress(pc.cache_key)
            if all(available.decodes(members) for members in groups.values()):
                found[pc.position] = (step, groups, json.loads(extra))
    return found
