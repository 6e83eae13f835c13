"""The worker that runs card tasks, called in this process as any executor's transport would call it."""

from __future__ import annotations

from cardloop.engine.worker import Worker
from cardloop.store.records import RunRecords
from tests.engine.test_messages import backward_task, stored_run  # noqa: F401  (fixtures)


def test_a_worker_stores_the_state_a_card_task_makes_as_the_local_run_did(backward_task, stored_run):
    root, plan = stored_run
    outcome = Worker(str(root)).handle(backward_task)
    assert outcome.failure is None
    back = plan.card("back1")
    (made,) = outcome.snapshots
    assert (made["group"], made["version"]) == next(iter(back.states_made.items()))
    local = [s for s in RunRecords(root / "runs.sqlite").snapshots_for_key(back.cache_key)
             if s.group == made["group"]]
    assert local, "the local run (persist 'all') snapshotted the state Backward made"
    # Recomputed from the loss's lineage in the worker, the gradients are the same bits: the same artifacts.
    assert {name: m["digest"] for name, m in made["members"].items()} == \
        {name: m["digest"] for name, m in local[0].members.items()}


def test_a_card_that_fails_in_a_worker_is_an_outcome_naming_it(backward_task, stored_run):
    root, _ = stored_run
    broken = type(backward_task)(**{**vars(backward_task), "value_loads": {}})  # without the batch Forward reads
    outcome = Worker(str(root)).handle(broken)
    assert outcome.outputs == {} and outcome.snapshots == []
    assert (outcome.failure.card_id, outcome.failure.card_type) == ("fwd1", "training_forward")
