"""Training-state snapshots with a scheduler: the member records which optimizer the scheduler acts on, and loading
decodes it over that one, whatever else the group holds."""

from __future__ import annotations

import cardloop
from cardloop.engine.plan import plan_pipeline
from cardloop.engine.resolve import StoredState
from cardloop.engine.snapshot import snapshot_group
from cardloop.engine.stored import StoreLoader
from cardloop.pipeline.model import Pipeline
from cardloop.store.artifacts import ArtifactStore


def two_optimizers() -> Pipeline:
    """One model, an SGD and an Adam over two of its layers, a scheduler over the Adam, then an RMSprop over the
    third layer: four members besides it."""
    p = Pipeline("two")
    model = p.add("model_define", "model", input_dim=4, layers=[8, 8], seed=0)["model"]
    p.add("training_init_optimizer", "sgd", model=model, optimizer_type="sgd", learning_rate=0.1, parameters=["0.*"])
    adam = p.add("training_init_optimizer", "adam", model=model, learning_rate=0.01, parameters=["2.*"])
    p.add("training_lr_scheduler", "sched", optimizer=adam["optimizer"], scheduler_type="exponential", gamma=0.5)
    p.add("training_init_optimizer", "later", model=model, optimizer_type="rmsprop", parameters=["4.*"])
    return p


def live_run(store):
    p = two_optimizers()
    result = cardloop.run(p, store=store, keep_outputs=True, threads=1)
    plan = plan_pipeline(p)
    slots = [None] * plan.slot_count
    for pc in plan.cards:
        for port, slot in pc.output_slots.items():
            slots[slot] = result.outputs[pc.id].get(port)
    return plan, slots


def test_the_scheduler_member_names_the_optimizer_it_acts_on(store):
    plan, slots = live_run(store)
    pc = plan.card("sched")
    group, version = next(iter(pc.states_made.items()))
    snap = snapshot_group(plan, slots, group, version, pc)
    bound = {member.name: member.bound_to for member in snap.members}
    assert bound == {"model.model": None, "sgd.optimizer": None, "adam.optimizer": None,
                     "sched.scheduler": "adam.optimizer", "later.optimizer": None, "rng": None}
    assert snap.members[3].record("d") == {"kind": "scheduler", "digest": "d", "bound_to": "adam.optimizer"}


def test_a_loaded_snapshot_binds_the_scheduler_to_the_loaded_optimizer_it_was_stored_with(store):
    plan, slots = live_run(store)
    pc = plan.card("later")
    group, version = next(iter(pc.states_made.items()))
    snap = snapshot_group(plan, slots, group, version, pc)
    artifacts = ArtifactStore(store)
    members = {m.name: m.record(artifacts.put(m.data, m.extension)) for m in snap.members}
    live = StoreLoader(artifacts, device="cpu").state(StoredState(members), restore_random=False)
    assert live["sched.scheduler"].optimizer is live["adam.optimizer"]
    assert type(live["adam.optimizer"]).__name__ == "Adam"
    stored_lr = slots[plan.states["adam.optimizer"].slot].param_groups[0]["lr"]
    assert live["adam.optimizer"].param_groups[0]["lr"] == stored_lr


def test_a_stored_scheduler_output_loads_over_its_own_optimizer(store):
    result = cardloop.run(two_optimizers(), store=store, threads=1, persist="all")
    scheduler = cardloop.load_output(result.run_id, "sched", "scheduler", store=store)
    assert type(scheduler.optimizer).__name__ == "Adam" and scheduler.get_last_lr() == [0.01]
