"""Building pipelines in code."""

import pytest

from cardloop.pipeline.model import OutputRef, Pipeline


def test_add_splits_links_from_config():
    p = Pipeline(name="code")
    model = p.add("model_define", "model", input_dim=4, layers=[8])
    opt = p.add("training_init_optimizer", model=model["model"], config={"learning_rate": 0.1})
    assert opt.inputs == {"model": "model.model"}
    assert opt.config == {"learning_rate": 0.1}
    assert model.config == {"input_dim": 4, "layers": [8]}


def test_fresh_ids_are_unique_and_readable():
    p = Pipeline()
    ids = [p.add("training_zero_grad").id for _ in range(3)]
    assert ids == ["zero_grad0", "zero_grad1", "zero_grad2"]


def test_output_refs_parse_and_print():
    assert str(OutputRef("a", "b")) == "a.b"
    assert OutputRef.parse("fwd0.model") == OutputRef("fwd0", "model")
    assert OutputRef.parse("nodot") is None and OutputRef.parse("a.b.c") is None


def test_card_lookup_names_the_missing_card():
    with pytest.raises(KeyError, match="no card 'x'"):
        Pipeline(name="p").card("x")
