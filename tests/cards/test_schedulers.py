"""Learning-rate scheduler cards (cards/schedulers.py): for every type, the learning rate after every step equals
torch.optim.lr_scheduler's own, exactly, and the weights equal the hand-written loop's, in an unrolled pipeline,
in loop blocks and in training_loop, on both executors; and a config or a link that cannot work is refused,
naming the field or port."""

from __future__ import annotations

import pytest
import torch

import cardloop
from cardloop.cards.spec import Port, card
from cardloop.errors import CardFailed, PipelineInvalid
from cardloop.kinds import MODEL, OPTIMIZER
from cardloop.pipeline.model import Pipeline
from tests.oracle import assert_same_weights
from tests.schedulers import BATCHES, STEPS, TYPES, blocks, hand_loop, looped, unrolled


@pytest.mark.parametrize("scheduler_type", TYPES)
def test_every_type_steps_as_torchs_scheduler_in_an_unrolled_pipeline(regression_csv, store, scheduler_type):
    result = cardloop.run(unrolled(regression_csv, scheduler_type), store=store, threads=1)
    model, lrs, _ = hand_loop(regression_csv, scheduler_type)
    assert result.metrics("lr") == lrs
    assert len(set(lrs)) > 1  # the schedule did change the rate
    assert_same_weights(result.outputs[f"step{STEPS - 1}"]["model"], model)


@pytest.mark.parametrize("scheduler_type", TYPES)
def test_every_type_steps_as_torchs_scheduler_inside_a_batches_block(regression_csv, store, scheduler_type):
    result = cardloop.run(blocks(regression_csv, scheduler_type), store=store, threads=1)
    model, lrs, scheduler = hand_loop(regression_csv, scheduler_type)
    epochs = result.outputs["epochs"]
    assert epochs["lr"] == [lrs[:BATCHES], lrs[BATCHES:]]
    assert_same_weights(epochs["model"], model)
    assert epochs["scheduler"].state_dict() == scheduler.state_dict()


@pytest.mark.parametrize("scheduler_type", TYPES)
def test_every_type_steps_as_torchs_scheduler_in_a_training_loop_card(regression_csv, store, scheduler_type):
    result = cardloop.run(looped(regression_csv, scheduler_type), store=store, threads=1)
    model, lrs, scheduler = hand_loop(regression_csv, scheduler_type)
    loop = result.outputs["loop"]
    assert result.metrics("lr") == lrs and loop["lr"].tolist() == lrs
    assert_same_weights(loop["model"], model)
    assert loop["scheduler"].state_dict() == scheduler.state_dict()
    assert loop["loop_info"]["scheduler_steps"] == STEPS


def test_a_training_loop_with_a_scheduler_is_served_from_the_cache_with_its_rates(regression_csv, store):
    first = cardloop.run(looped(regression_csv, "cosine"), store=store, threads=1)
    again = cardloop.run(looped(regression_csv, "cosine"), store=store, threads=1)
    assert again.cached == ["data", "model", "opt", "sched", "loop"]
    assert again.metrics("lr") == first.metrics("lr") == hand_loop(regression_csv, "cosine")[1]
    assert again.outputs["loop"]["scheduler"].state_dict() == first.outputs["loop"]["scheduler"].state_dict()


@pytest.mark.parametrize("scheduler_type", ["step", "reduce_on_plateau"])
def test_a_training_loop_steps_the_scheduler_once_per_pass_with_interval_epoch(regression_csv, store, scheduler_type):
    result = cardloop.run(looped(regression_csv, scheduler_type, epochs=4, interval="epoch"), store=store, threads=1)
    model, lrs, _ = hand_loop(regression_csv, scheduler_type, steps=4 * BATCHES, per_pass=True)
    assert result.metrics("lr") == lrs and len(lrs) == 4
    assert_same_weights(result.outputs["loop"]["model"], model)


@pytest.mark.parametrize("scheduler_type", ["multistep", "warmup_cosine", "reduce_on_plateau"])
def test_the_process_executor_steps_schedulers_as_the_local_one(regression_csv, store, scheduler_type):
    result = cardloop.run(unrolled(regression_csv, scheduler_type, steps=8), store=store, threads=1,
                          executor="process")
    model, lrs, _ = hand_loop(regression_csv, scheduler_type, steps=8)
    assert result.metrics("lr") == lrs
    assert_same_weights(result.outputs["step7"]["model"], model)


def test_the_process_executor_runs_a_scheduler_inside_loop_blocks(regression_csv, store):
    result = cardloop.run(blocks(regression_csv, "one_cycle"), store=store, threads=1, executor="process")
    model, lrs, _ = hand_loop(regression_csv, "one_cycle")
    assert result.outputs["epochs"]["lr"] == [lrs[:BATCHES], lrs[BATCHES:]]
    assert_same_weights(result.outputs["epochs"]["model"], model)


def test_the_process_executor_runs_a_training_loop_with_a_scheduler(regression_csv, store):
    result = cardloop.run(looped(regression_csv, "reduce_on_plateau"), store=store, threads=1, executor="process")
    model, lrs, scheduler = hand_loop(regression_csv, "reduce_on_plateau")
    assert result.metrics("lr") == lrs
    assert_same_weights(result.outputs["loop"]["model"], model)
    assert result.outputs["loop"]["scheduler"].state_dict() == scheduler.state_dict()


@pytest.mark.parametrize("executor", ["local", "process"])
def test_under_persist_all_every_steps_scheduler_is_stored_and_reloads_as_torch_left_it(regression_csv, store,
                                                                                       executor):
    result = cardloop.run(unrolled(regression_csv, "warmup_cosine", steps=4), store=store, threads=1,
                          executor=executor, persist="all")
    _, lrs, _ = hand_loop(regression_csv, "warmup_cosine", steps=4)
    for i in range(4):
        scheduler = cardloop.load_output(result.run_id, f"lr{i}", "scheduler", store=store)
        _, _, expected = hand_loop(regression_csv, "warmup_cosine", steps=i + 1)
        assert scheduler.state_dict() == expected.state_dict() and scheduler.get_last_lr()[0] == lrs[i]
        optimizer = cardloop.load_output(result.run_id, f"lr{i}", "optimizer", store=store)
        assert optimizer.param_groups[0]["lr"] == lrs[i]


def test_a_second_run_serves_the_scheduler_steps_from_the_cache_and_goes_on_exactly(regression_csv, store):
    cardloop.run(unrolled(regression_csv, "cosine", steps=4), store=store, threads=1)
    longer = cardloop.run(unrolled(regression_csv, "cosine", steps=8), store=store, threads=1)
    model, lrs, _ = hand_loop(regression_csv, "cosine", steps=8)
    assert "lr3" in longer.cached and "lr4" in longer.executed
    assert longer.metrics("lr") == lrs
    assert_same_weights(longer.outputs["step7"]["model"], model)


def test_making_a_scheduler_moves_the_optimizers_version(regression_csv):
    from cardloop.engine.plan import plan_pipeline

    plan = plan_pipeline(unrolled(regression_csv, "step", steps=1))
    opt, sched = plan.card("opt"), plan.card("sched")
    group = next(iter(opt.states_made))
    assert sched.states_made == {group: opt.states_made[group] + 1}
    assert plan.states["sched.scheduler"].group == group


def _pipeline_with(config: dict) -> Pipeline:
    p = Pipeline("bad")
    model = p.add("model_define", "model", input_dim=4, layers=[8])["model"]
    optimizer = p.add("training_init_optimizer", "opt", model=model)["optimizer"]
    p.add("training_lr_scheduler", "sched", optimizer=optimizer, **config)
    return p


@pytest.mark.parametrize("config, message", [
    ({"scheduler_type": "multistep"}, "config field 'milestones' is required for scheduler_type 'multistep' "
                                      "(torch's MultiStepLR, which takes milestones, gamma)"),
    ({"scheduler_type": "cosine", "T_max": 5, "gamma": 0.5},
     "config field 'gamma' does not apply to scheduler_type 'cosine' (torch's CosineAnnealingLR, which takes T_max, "
     "eta_min)"),
    ({"scheduler_type": "warmup_cosine", "T_max": 5}, "config field 'warmup_steps' is required for scheduler_type "
                                                      "'warmup_cosine'"),
    ({"scheduler_type": "one_cycle", "max_lr": 0.1, "epochs": 3},
     "config field 'total_steps' is required for scheduler_type 'one_cycle' unless epochs and steps_per_epoch"),
    ({"scheduler_type": "cyclic"}, "config field 'scheduler_type' is 'cyclic'"),
    ({"scheduler_type": "reduce_on_plateau", "factor": 1.5}, "config field 'factor' is 1.5"),
])
def test_a_config_that_does_not_fit_the_scheduler_type_is_refused_naming_the_field(config, message):
    with pytest.raises(PipelineInvalid) as caught:
        cardloop.run(_pipeline_with(config))
    assert f"card 'sched' (training_lr_scheduler): {message}" in str(caught.value)


@card("test_adagrad", title="Adagrad", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("optimizer", OPTIMIZER)])
def adagrad(config, model):
    """An optimizer without momentum, which OneCycleLR's cycle_momentum cannot cycle."""
    return {"optimizer": torch.optim.Adagrad(model.parameters())}


def test_a_config_torch_refuses_is_a_card_error_saying_so(store):
    p = _pipeline_with({"scheduler_type": "one_cycle", "max_lr": 0.1, "total_steps": 5})
    p.cards[1] = type(p.cards[1])(id="opt", type="test_adagrad", inputs={"model": "model.model"})
    with pytest.raises(CardFailed, match="torch refuses scheduler_type 'one_cycle' with this config: optimizer must "
                                         "support momentum"):
        cardloop.run(p, store=store)


def test_plateau_without_a_metric_is_an_error_naming_the_port(regression_csv, store):
    p = unrolled(regression_csv, "reduce_on_plateau", steps=1)
    del p.card("lr0").inputs["metric"]
    with pytest.raises(CardFailed, match="input 'metric' is not connected: scheduler_type reduce_on_plateau"):
        cardloop.run(p, store=store)


def test_a_metric_for_a_scheduler_other_than_plateau_is_an_error_naming_the_port(regression_csv, store):
    p = unrolled(regression_csv, "step", steps=1)
    p.card("lr0").inputs["metric"] = "loss0.loss_value"
    with pytest.raises(CardFailed, match="input 'metric' is only for scheduler_type reduce_on_plateau; a StepLR"):
        cardloop.run(p, store=store)


def test_stepping_a_scheduler_with_another_optimizer_is_an_error(regression_csv, store):
    p = unrolled(regression_csv, "step", steps=1)
    second = p.add("model_define", "second", input_dim=4, layers=[8], seed=1)
    other = p.add("training_init_optimizer", "other", model=second["model"])
    for card in (second, other):
        p.cards.remove(card)
        p.cards.insert(p.cards.index(p.card("lr0")), card)
    p.card("lr0").inputs["optimizer"] = str(other["optimizer"])
    with pytest.raises(CardFailed, match="the scheduler does not act on this optimizer"):
        cardloop.run(p, store=store)


def test_the_catalogue_lists_both_cards_with_the_ports_of_the_issue():
    from cardloop.cards.registry import default_registry

    make = default_registry().get("training_lr_scheduler").to_json()
    step = default_registry().get("training_scheduler_step").to_json()
    assert [p["name"] for p in make["inputs"]] == ["optimizer"]
    assert [p["name"] for p in make["outputs"]] == ["scheduler"]
    assert make["config_schema"]["properties"]["scheduler_type"]["enum"] == [
        "step", "multistep", "exponential", "cosine", "linear_warmup", "warmup_cosine", "one_cycle",
        "reduce_on_plateau"]
    assert [(p["name"], p["required"]) for p in step["inputs"]] == [
        ("scheduler", True), ("optimizer", True), ("metric", False)]
    assert [p["name"] for p in step["outputs"]] == ["scheduler", "optimizer", "lr"] and step["outputs"][2]["metric"]
