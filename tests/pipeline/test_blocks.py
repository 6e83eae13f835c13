"""Checking loop blocks (pipeline/blocks.py): the body checked once, scopes, loop settings, `when`, messages that
name the block path."""

from __future__ import annotations

import pytest

from cardloop.errors import PipelineInvalid
from cardloop.pipeline.fileformat import pipeline_from_dict
from cardloop.pipeline.validate import validate_pipeline

HEAD = [
    {"id": "data", "type": "data_load", "config": {"path": "cardloop:diabetes.csv"}},
    {"id": "model", "type": "model_define", "config": {"input_dim": 10}},
    {"id": "opt", "type": "training_init_optimizer", "inputs": {"model": "model.model"}},
    {"id": "batch", "type": "training_prepare_batch", "inputs": {"train_dataset": "data.dataset"}},
]
STEP = [
    {"id": "zero", "type": "training_zero_grad", "inputs": {"optimizer": "steps.optimizer"}},
    {"id": "fwd", "type": "training_forward", "inputs": {"model": "steps.model", "batch_data": "steps.batch"}},
    {"id": "loss", "type": "training_loss", "inputs": {"predictions": "fwd.predictions", "batch_data": "steps.batch"}},
    {"id": "back", "type": "training_backward", "inputs": {"loss": "loss.loss", "model": "fwd.model"}},
    {"id": "step", "type": "training_optimizer_step", "inputs": {"optimizer": "zero.optimizer", "model": "back.model"}},
]


def block(body=None, config=None, inputs=None, outputs=None, **extra):
    return {"id": "steps", "type": "loop", "config": {"times": 3, **(config or {})},
            "inputs": inputs or {"model": "model.model", "optimizer": "opt.optimizer", "batch": "batch.batch_data"},
            "body": {"cards": body if body is not None else [dict(c) for c in STEP],
                     "outputs": outputs or {"model": "step.model", "loss": "loss.loss_value"}}, **extra}


def problems(*cards) -> list[str]:
    pipeline = pipeline_from_dict({"version": 1, "name": "t", "cards": [*HEAD, *cards]})
    return [p.message for p in validate_pipeline(pipeline)]


def test_a_block_of_the_training_steps_is_valid_and_its_outputs_have_kinds():
    assert problems(block(), {"id": "ev", "type": "evaluate", "inputs": {"model": "steps.model",
                                                                         "dataset": "data.dataset"}}) == []


def test_a_body_problem_names_the_block_path():
    body = [dict(c) for c in STEP]
    body[1] = {**body[1], "config": {"no_such": 1}}
    found = problems(block(body))
    assert len(found) == 1 and found[0].startswith("steps.fwd: ")
    assert "unknown config field 'no_such'" in found[0]


def test_a_body_card_cannot_use_a_card_outside_the_block_directly():
    body = [dict(c) for c in STEP]
    body[1] = {**body[1], "inputs": {"model": "model.model", "batch_data": "steps.batch"}}
    found = problems(block(body))
    assert found == ["steps.fwd: card 'fwd' (training_forward): input 'model' uses 'model.model', but 'model' is "
                     "outside block 'steps': bring its output in through an input of the block ('inputs: {name: "
                     "model.<port>}' on 'steps') and use 'steps.name'"]


def test_a_card_outside_cannot_use_a_body_card():
    found = problems(block(), {"id": "ev", "type": "evaluate", "inputs": {"model": "step.model",
                                                                          "dataset": "data.dataset"}})
    assert found == ["card 'ev' (evaluate): input 'model' uses 'step.model', but 'step' is inside block 'steps': "
                     "use an output of the block ('steps.<port>', each named in its body's outputs)"]


def test_until_needs_a_bound():
    found = problems(block(config={"times": None, "until": "loss.loss_value"}))
    assert any("needs a bound" in message for message in found)


def test_over_needs_an_iterator_output():
    inputs = {"model": "model.model", "optimizer": "opt.optimizer", "batch": "batch.batch_data",
              "over": "data.dataset"}
    found = problems(block(config={"times": None}, inputs=inputs))
    assert any("input 'over' takes an iterator output" in message for message in found)


def test_every_names_an_enclosing_loop():
    body = [dict(c) for c in STEP]
    body[4] = {**body[4], "when": {"every": 2, "of": "epochs"}}
    found = problems(block(body))
    assert found == ["steps.step: when: 'of' is 'epochs'; it names a loop that encloses the card (here: steps)"]


@pytest.mark.parametrize("when, says", [
    ({"finite": "back.gradients_computed"}, None),
    ({"finite": "step.model"}, "runs after it"),
    ({"value": "loss.loss_value", "above": 1, "below": 2}, "exactly one comparison"),
    ({"every": 0, "of": "steps"}, "1 or more"),
    ({"sometimes": True}, "unknown condition"),
    ({"any": [{"every": 2, "of": "steps"}, {"value": "loss.loss_value", "above": 1}]}, None),
    ({"any": []}, "'any' takes a non-empty list of conditions"),
    ({"any": [{"every": 2, "of": "epochs"}]}, "'of' is 'epochs'"),
])
def test_when_conditions_are_checked(when, says):
    body = [dict(c) for c in STEP]
    body[4] = {**body[4], "when": when}
    found = problems(block(body))
    assert (found == []) if says is None else (len(found) == 1 and says in found[0])


def test_when_on_a_top_level_card_reads_a_card_above_it():
    card = {"id": "ev", "type": "evaluate", "inputs": {"model": "model.model", "dataset": "data.dataset"},
            "when": {"value": "batch.batch_info", "equals": 1}}
    assert problems(card) == []


@pytest.mark.parametrize("when, says", [
    ({"every": 2, "of": "steps"}, "ev: when: 'of' is 'steps'; it names a loop that encloses the card (here: none: "
                                  "the card is in no loop)"),
    ({"finite": "later.loss"}, "ev: when: 'later.loss' is not an output of a card above it"),
    ({"value": "model.nope", "above": 1}, "ev: when: card 'model' has no output 'nope'"),
])
def test_a_top_level_when_that_cannot_be_read_is_refused_naming_the_card(when, says):
    card = {"id": "ev", "type": "evaluate", "inputs": {"model": "model.model", "dataset": "data.dataset"},
            "when": when}
    found = problems(card)
    assert len(found) == 1 and says in found[0], found


def test_a_block_output_must_name_a_body_output():
    found = problems(block(outputs={"model": "step.nope"}))
    assert found == ["steps: output 'model' uses 'step.nope', but card 'step' has no output 'nope'; its outputs "
                     "are: model, optimizer, step_info"]


def test_a_carried_value_comes_from_a_body_output():
    found = problems(block(config={"carry": {"last": {"init": None, "next": "nowhere.x"}}}))
    assert any("carry.last.next uses 'nowhere.x'" in message for message in found)


def test_a_body_must_be_a_mapping_with_cards():
    with pytest.raises(PipelineInvalid) as invalid:
        pipeline_from_dict({"version": 1, "cards": [{"id": "b", "type": "loop", "body": [1]}]})
    assert "block 'b': 'body' must be a mapping" in str(invalid.value)


def test_the_file_round_trips_blocks_and_conditions():
    body = [dict(c) for c in STEP]
    body[4] = {**body[4], "when": {"finite": "loss.loss_value"}}
    data = {"version": 1, "name": "t", "cards": [*HEAD, block(body)]}
    assert pipeline_from_dict(data).to_dict() == data


def test_any_holds_when_one_condition_holds_even_beside_a_skipped_value():
    from cardloop.pipeline.blocks import SKIPPED, AnyOf, Compare, Every, condition_holds

    reads_skipped = Compare(1, "loss_value", "above", 1.0)
    every_two = AnyOf((reads_skipped, Every(2, 0, False)))
    slots, slot_of = [SKIPPED], (lambda position, port: 0)
    assert condition_holds(every_two, slot_of, slots, [4], [4]) is True
    assert condition_holds(every_two, slot_of, slots, [3], [3]) is None  # else the card is skipped, as its reader
    assert condition_holds(AnyOf((Every(2, 0, False), Every(3, 0, False))), slot_of, slots, [5], [5]) is False
