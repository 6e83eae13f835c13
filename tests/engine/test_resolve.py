"""The scheduler: what a run executes and what it takes from the store (docs/design.md §4 and §5). No card runs here.

The plans are the guide's Basic Training Loop over two batches, without data preparation:

    data model opt | batch0 zero0 fwd0 loss0 back0 step0 | batch1 zero1 fwd1 loss1 back1 step1

Model and optimizer form one training-state group, `model.model`, whose versions are made in turn by
model (0), opt (1), zero0 (2), fwd0 (3), back0 (4), step0 (5), zero1 (6), fwd1 (7), back1 (8), step1 (9).
"""

import hashlib
import subprocess
import sys

from cardloop.engine.plan import plan_pipeline
from cardloop.engine.resolve import (
    StoredState,
    StoredValue,
    final_states,
    schedule,
    unread_slots,
)
from cardloop.examples import add_training_step, basic_training_loop
from cardloop.kinds import STATE_KINDS
from cardloop.pipeline.model import Pipeline

STATE = "model.model"
MAKERS = ["model", "opt", "zero0", "fwd0", "back0", "step0", "zero1", "fwd1", "back1", "step1"]


def two_batches():
    return plan_pipeline(basic_training_loop(path="regression.csv", input_dim=4, layers=(8,), prepare=False,
                                             batches=2, batch_size=16))


def evaluation_between_steps():
    """The same two steps with an `evaluate` card (it reads the model, changes nothing) between them."""
    p = Pipeline(name="evaluation-between-steps")
    data = p.add("data_load", "data", path="regression.csv")
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)["model"]
    optimizer = p.add("training_init_optimizer", "opt", model=model)["optimizer"]
    model, optimizer, _ = add_training_step(p, 0, data["dataset"], model, optimizer, batch_size=16)
    p.add("evaluate", "eval0", model=model, dataset=data["dataset"])
    add_training_step(p, 1, data["dataset"], model, optimizer, batch_size=16)
    return plan_pipeline(p)


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def stored_value(card_id, port, kind="x"):
    return StoredValue(kind, digest(f"{card_id}.{port}"))


def stored_state(version):
    return StoredState({"model.model": {"kind": "model", "digest": digest(f"model v{version}")},
                        "opt.optimizer": {"kind": "optimizer", "digest": digest(f"optimizer v{version}")}})


class FakeStore:
    """An Availability answered from dicts: values by (card id, port), snapshots by (group, version)."""

    def __init__(self, values=None, states=None):
        self.values = dict(values or {})
        self.states = dict(states or {})

    @classmethod
    def holding_everything(cls, plan, *, except_values=(), except_states=()):
        values = {(pc.id, port): stored_value(pc.id, port, pc.card_type.output(port).kind)
                  for pc in plan.cards for port in pc.output_slots
                  if pc.card_type.output(port).kind not in STATE_KINDS}
        states = {(STATE, version): stored_state(version) for version in range(len(MAKERS))}
        for key in except_values:
            del values[key]
        for version in except_states:
            del states[(STATE, version)]
        return cls(values, states)

    def value(self, pc, port):
        return self.values.get((pc.id, port))

    def state(self, group, version, maker):
        assert maker.states_made[group] == version, "the scheduler names the card that made the version"
        return self.states.get((group, version))


def positions(plan, *card_ids):
    return {plan.position(card_id) for card_id in card_ids}


def ids(cards):
    return [pc.id for pc in cards]


def slot(plan, card_id, port):
    return plan.cards[plan.position(card_id)].output_slots[port]


def test_the_state_group_is_made_by_the_cards_the_tests_assume():
    plan = two_batches()
    assert [next(pc.id for pc in plan.cards if pc.states_made.get(STATE) == v) for v in range(10)] == MAKERS


def test_when_everything_is_stored_nothing_runs():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), set(), needed_slots=unread_slots(plan),
                    needed_states=final_states(plan))
    assert work.run == []
    assert ids(work.skipped) == ids(plan.cards)
    assert work.missing == [] and work.value_loads == {} and work.state_loads == {}


def test_a_card_run_alone_takes_the_values_it_reads_from_the_store():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "loss1"))
    assert ids(work.run) == ["loss1"]
    assert work.value_loads == {slot(plan, "fwd1", "predictions"): stored_value("fwd1", "predictions", "tensor"),
                                slot(plan, "batch1", "batch_data"): stored_value("batch1", "batch_data", "batch")}
    assert work.state_loads == {}


def test_a_card_run_alone_takes_the_state_version_it_sees_from_the_store():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "step1"))
    assert ids(work.run) == ["step1"]
    assert work.state_loads == {plan.position("step1"): [(STATE, 8, stored_state(8))]}
    assert work.value_loads == {}


def test_a_missing_value_pulls_in_the_card_that_makes_it():
    plan = two_batches()
    store = FakeStore.holding_everything(plan, except_values=[("batch1", "batch_data")])
    work = schedule(plan, store, positions(plan, "loss1"))
    assert ids(work.run) == ["batch1", "loss1"]
    assert set(work.value_loads) == {slot(plan, "data", "dataset"), slot(plan, "fwd1", "predictions")}


def test_missing_values_pull_in_their_makers_as_far_back_as_needed():
    plan = two_batches()
    store = FakeStore.holding_everything(plan, except_values=[("batch1", "batch_data"), ("data", "dataset")])
    work = schedule(plan, store, positions(plan, "loss1"))
    assert ids(work.run) == ["data", "batch1", "loss1"]
    assert set(work.value_loads) == {slot(plan, "fwd1", "predictions")}


def test_a_missing_state_version_pulls_in_the_card_that_made_it_and_that_cards_graph():
    plan = two_batches()
    store = FakeStore.holding_everything(plan, except_states=[8])
    work = schedule(plan, store, positions(plan, "step1"))
    assert ids(work.run) == ["fwd1", "loss1", "back1", "step1"]
    assert work.state_loads == {plan.position("fwd1"): [(STATE, 6, stored_state(6))]}


def test_backward_runs_with_the_loss_and_forward_that_made_its_graph_even_when_they_are_stored():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "back1"))
    assert ids(work.run) == ["fwd1", "loss1", "back1"]
    # the loss and the predictions are made in the run, never loaded: a stored loss has no graph
    assert work.value_loads == {slot(plan, "batch1", "batch_data"): stored_value("batch1", "batch_data", "batch")}
    assert work.state_loads == {plan.position("fwd1"): [(STATE, 6, stored_state(6))]}


def test_backward_pulls_in_the_forward_even_when_its_loss_card_must_run_anyway():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "loss1", "back1"))
    assert ids(work.run) == ["fwd1", "loss1", "back1"]
    assert slot(plan, "fwd1", "predictions") not in work.value_loads


def test_a_live_state_is_never_replaced_by_a_snapshot_the_cards_in_between_run():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "zero0", "zero1"))
    # zero0 makes version 2 live in the run; zero1 sees version 5: fwd0, back0 (with its loss) and step0 run too
    assert ids(work.run) == ["zero0", "fwd0", "loss0", "back0", "step0", "zero1"]
    assert work.state_loads == {plan.position("zero0"): [(STATE, 1, stored_state(1))]}
    assert work.value_loads == {slot(plan, "batch0", "batch_data"): stored_value("batch0", "batch_data", "batch")}


def test_a_state_not_yet_live_is_loaded_from_its_snapshot():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "zero1"))
    assert ids(work.run) == ["zero1"]
    assert work.state_loads == {plan.position("zero1"): [(STATE, 5, stored_state(5))]}


def test_a_state_loaded_for_a_card_that_only_reads_it_is_not_reused_at_a_later_version():
    plan = evaluation_between_steps()
    assert plan.cards[plan.position("eval0")].states_seen == {STATE: 5}
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "eval0", "step1"))
    loads_version_8 = (STATE, 8, stored_state(8)) in work.state_loads.get(plan.position("step1"), [])
    cards_in_between_run = ids(work.run) == ["eval0", "zero1", "fwd1", "loss1", "back1", "step1"]
    assert loads_version_8 or cards_in_between_run, (ids(work.run), work.state_loads)


def test_without_pulling_missing_values_are_listed_and_their_makers_do_not_run():
    plan = two_batches()
    work = schedule(plan, FakeStore(), positions(plan, "loss1"), pull_missing=False)
    assert ids(work.run) == ["loss1"]
    assert sorted(work.missing) == ["output 'batch_data' of card 'batch1'", "output 'predictions' of card 'fwd1'"]
    assert work.value_loads == {}


def test_without_pulling_a_missing_state_version_is_listed_with_the_card_that_made_it():
    plan = two_batches()
    store = FakeStore.holding_everything(plan, except_states=[8])
    work = schedule(plan, store, positions(plan, "step1"), pull_missing=False)
    assert ids(work.run) == ["step1"]
    assert work.missing == ["the state 'model.model' as card 'back1' left it"]
    assert work.state_loads == {}


def test_without_pulling_the_lineage_of_a_graph_input_still_runs():
    plan = two_batches()
    work = schedule(plan, FakeStore(), positions(plan, "back1"), pull_missing=False)
    assert ids(work.run) == ["fwd1", "loss1", "back1"]
    assert {"output 'batch_data' of card 'batch1'", "the state 'model.model' as card 'zero1' left it"} <= set(
        work.missing)


def test_without_pulling_a_state_made_by_a_card_that_runs_is_not_missing():
    plan = two_batches()
    store = FakeStore.holding_everything(plan, except_states=[7])
    work = schedule(plan, store, positions(plan, "back1"), pull_missing=False)
    assert ids(work.run) == ["fwd1", "loss1", "back1"]
    assert work.missing == []


def test_without_pulling_nothing_is_missing_when_the_store_has_everything():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "fwd1"), pull_missing=False)
    assert ids(work.run) == ["fwd1"] and work.missing == []
    assert work.state_loads == {plan.position("fwd1"): [(STATE, 6, stored_state(6))]}


def test_a_run_target_that_is_not_stored_pulls_its_maker():
    plan = two_batches()
    store = FakeStore.holding_everything(plan, except_values=[("loss0", "loss_value")], except_states=[9])
    work = schedule(plan, store, set(), needed_slots=unread_slots(plan), needed_states=final_states(plan))
    assert ids(work.run) == ["loss0", "step1"]
    assert work.state_loads == {plan.position("step1"): [(STATE, 8, stored_state(8))]}


def test_the_run_targets_are_the_final_state_and_the_outputs_no_card_reads():
    plan = two_batches()
    assert final_states(plan) == {(STATE, 9)}
    unread = {(pc.id, port) for pc in plan.cards for port, s in pc.output_slots.items() if s in unread_slots(plan)}
    assert unread == {(f"{card}{i}", port) for i in range(2) for card, port in
                      [("batch", "batch_info"), ("loss", "loss_value"), ("back", "gradients_computed"),
                       ("step", "step_info")]}


def test_without_skipped_the_schedule_lists_only_what_runs():
    plan = two_batches()
    work = schedule(plan, FakeStore.holding_everything(plan), positions(plan, "zero1"), with_skipped=False)
    assert ids(work.run) == ["zero1"] and work.skipped == []


def test_planning_and_scheduling_do_not_import_torch():
    script = (
        "import sys\n"
        "from cardloop.engine.plan import plan_pipeline\n"
        "from cardloop.engine.resolve import schedule, final_states, unread_slots\n"
        "class NothingStored:\n"
        "    def value(self, pc, port): return None\n"
        "    def state(self, group, version, maker): return None\n"
        "from cardloop.examples import basic_training_loop\n"
        "plan = plan_pipeline(basic_training_loop(path='x.csv', input_dim=4, batches=2))\n"
        "work = schedule(plan, NothingStored(), set(), needed_slots=unread_slots(plan),"
        " needed_states=final_states(plan))\n"
        "assert len(work.run) == len(plan.cards), work.run\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
