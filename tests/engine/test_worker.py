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


SCALING_CARDS = '''
from pathlib import Path

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import MODEL


class ScaleConfig(CardConfig):
    marker: str = ""


@card("test_scale_then_fail_once", title="Scale, then fail once", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("model", MODEL, state_of="model")], config=ScaleConfig, mutates_state=True)
def scale_then_fail_once(config, model):
    """Double the model's parameters in place; then fail, the first time (until `marker` exists)."""
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(2)
    if not Path(config.marker).exists():
        Path(config.marker).touch()
        raise CardError("failing once, after changing the model")
    return {"model": model}
'''


def test_a_state_a_failed_card_changed_is_not_handed_to_the_next_task_as_the_stored_one(tmp_path, store):
    """The warm worker keeps the live state it last stored, for the next task that loads that snapshot: a card that
    changed it and failed must not leave it there, or the run after it starts from the changed state."""
    import pytest
    import torch

    import cardloop
    from cardloop import CardFailed
    from cardloop.pipeline.model import Pipeline

    cards = tmp_path / "scaling.py"
    cards.write_text(SCALING_CARDS)
    pipeline = Pipeline("scale")
    model = pipeline.add("model_define", "model", input_dim=4, layers=[8], seed=0)
    pipeline.add("test_scale_then_fail_once", "scale", model=model["model"], marker=str(tmp_path / "failed"))
    with pytest.raises(CardFailed):
        cardloop.run(pipeline, store=store, executor="process", threads=1, cards=[cards])
    result = cardloop.run(pipeline, store=store, executor="process", threads=1, cards=[cards])
    defined = cardloop.load_output(result.run_id, "model", "model", store=store)
    scaled = cardloop.load_output(result.run_id, "scale", "model", store=store)
    assert all(torch.equal(2 * a, b) for a, b in zip(defined.parameters(), scaled.parameters()))
