"""Validation reports every problem at once, each naming the card and the port or config field."""

import subprocess
import sys

import pytest

from cardloop.errors import PipelineInvalid
from cardloop.pipeline.fileformat import pipeline_from_dict
from cardloop.pipeline.model import Pipeline
from cardloop.pipeline.validate import check_pipeline, validate_pipeline


def pipeline(*cards):
    return pipeline_from_dict({"version": 1, "name": "t", "cards": list(cards)})


DATA = {"id": "data", "type": "data_load", "config": {"path": "x.csv"}}
MODEL = {"id": "model", "type": "model_define", "config": {"input_dim": 3}}


def messages(p):
    return [problem.message for problem in validate_pipeline(p)]


def test_a_valid_pipeline_has_no_problems():
    p = pipeline(DATA, MODEL, {"id": "opt", "type": "training_init_optimizer", "inputs": {"model": "model.model"}})
    assert messages(p) == []


def test_unknown_card_type_is_named_with_a_suggestion():
    [message] = messages(pipeline({"id": "f", "type": "training_forwrd"}))
    assert "card 'f'" in message and "unknown card type 'training_forwrd'" in message
    assert "did you mean 'training_forward'" in message


def test_unknown_input_port_lists_the_valid_ports():
    p = pipeline(MODEL, {"id": "opt", "type": "training_init_optimizer", "inputs": {"model": "model.model",
                                                                                    "modle": "model.model"}})
    [message] = messages(p)
    assert "card 'opt'" in message and "no input port 'modle'" in message and "model" in message


def test_unknown_output_port_of_the_source_lists_its_outputs():
    p = pipeline(MODEL, {"id": "opt", "type": "training_init_optimizer", "inputs": {"model": "model.net"}})
    [message] = messages(p)
    assert "'model.net'" in message and "has no output 'net'" in message and "its outputs are: model" in message


def test_kind_mismatch_names_both_kinds():
    p = pipeline(DATA, {"id": "opt", "type": "training_init_optimizer", "inputs": {"model": "data.dataset"}})
    [message] = messages(p)
    assert "input 'model' takes kind 'model'" in message and "'data.dataset' is of kind 'dataframe'" in message


def test_missing_required_input_is_named():
    [message] = messages(pipeline({"id": "opt", "type": "training_init_optimizer"}))
    assert "card 'opt'" in message and "required input 'model' (model) is not connected" in message


def test_a_card_using_a_card_below_it_names_both():
    p = pipeline({"id": "opt", "type": "training_init_optimizer", "inputs": {"model": "model.model"}}, MODEL)
    [message] = messages(p)
    assert "card 'opt'" in message and "'model', which comes after it" in message
    assert "only use outputs of cards above it" in message


def test_a_card_using_itself_is_refused():
    p = pipeline({"id": "z", "type": "training_zero_grad", "inputs": {"optimizer": "z.optimizer"}})
    assert any("uses itself" in m for m in messages(p))


def test_duplicate_ids_are_named_with_positions():
    p = pipeline(MODEL, dict(MODEL))
    assert any("card id 'model' is used twice (positions 1 and 2)" in m for m in messages(p))


def test_bad_config_values_name_the_field_and_the_valid_choices():
    p = pipeline(MODEL, {"id": "opt", "type": "training_init_optimizer", "inputs": {"model": "model.model"},
                         "config": {"optimizer_type": "adagrad", "learning_rate": -1}})
    found = messages(p)
    assert any("config field 'optimizer_type' is 'adagrad'" in m and "'adam', 'sgd', 'rmsprop' or 'adamw'" in m
               for m in found)
    assert any("config field 'learning_rate' is -1" in m and "greater than 0" in m for m in found)


def test_unknown_config_field_lists_valid_fields():
    p = pipeline({"id": "model", "type": "model_define", "config": {"input_dim": 3, "layer": [4]}})
    [message] = messages(p)
    assert "unknown config field 'layer'" in message and "layers" in message


def test_a_config_validators_own_sentence_is_kept_as_written_after_the_field_and_its_value():
    [message] = messages(pipeline({"id": "model", "type": "model_define",
                                   "config": {"input_dim": 3, "module": "My_Models:Net"}}))
    assert message.startswith("card 'model' (model_define): config field 'module' is 'My_Models:Net': 'My_Models' is "
                              "neither a card file loaded in this process nor an installed card pack")


def test_missing_required_config_field():
    [message] = messages(pipeline({"id": "model", "type": "model_define"}))
    assert "config field 'input_dim' is required" in message


def test_every_problem_is_reported_at_once():
    p = pipeline({"id": "x", "type": "nope"}, {"id": "opt", "type": "training_init_optimizer"},
                 {"id": "model", "type": "model_define", "config": {"input_dim": 0}})
    with pytest.raises(PipelineInvalid) as caught:
        check_pipeline(p)
    assert len(caught.value.problems) == 3
    assert "3 problem(s)" in str(caught.value)


@pytest.mark.parametrize("version, expected",
                         [(None, "has no 'version' field"), (2, "unknown pipeline format version 2")])
def test_missing_or_unknown_version_is_refused(version, expected):
    data = {"name": "t", "cards": []} if version is None else {"version": version, "cards": []}
    with pytest.raises(PipelineInvalid) as caught:
        pipeline_from_dict(data)
    assert expected in str(caught.value)


def test_validation_and_planning_import_no_torch():
    code = ("import sys; from cardloop.examples import basic_training_loop; "
            "from cardloop.engine.plan import plan_pipeline; "
            "plan_pipeline(basic_training_loop(batches=3)); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_pipeline_without_cards_is_invalid():
    problems = validate_pipeline(Pipeline(name="empty"))
    assert [(p.message, p.field) for p in problems] == [("the pipeline has no cards; add at least one", "cards")]


@pytest.mark.parametrize("card_type, config", [
    ("model_define", {"input_dim": 4, "seed": 2**80}), ("model_define", {"input_dim": 2**63}),
    ("model_define", {"input_dim": 4, "layers": [8, 2**63]}), ("model_define", {"input_dim": 4, "output_dim": 2**63}),
    ("data_split", {"seed": 2**64}), ("data_split", {"seed": -1}),
    ("training_prepare_batch", {"batch_size": 2**63}), ("training_prepare_batch", {"batch_index": 2**63}),
    ("training_forward", {"batch_index": 2**63}), ("evaluate", {"batch_size": 2**63}),
    ("training_loop", {"batch_size": 2**63}), ("training_loop", {"start_batch": 2**63}),
    ("training_loop", {"num_batches": 2**63}), ("training_loop", {"epochs": 10**30})])
def test_config_values_that_would_overflow_at_run_time_are_refused_naming_card_and_field(card_type, config):
    field = list(config)[-1]
    p = Pipeline(name="bounds")
    p.add(card_type, "c", config=config)
    found = [problem for problem in validate_pipeline(p) if problem.field and problem.field.startswith(field)]
    assert len(found) == 1, validate_pipeline(p)
    assert found[0].card == "c"
    assert found[0].message.startswith(f"card 'c' ({card_type}): config field '{field}")
