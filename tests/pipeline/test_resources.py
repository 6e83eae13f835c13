"""Per-card and per-block `resources` in the pipeline (pipeline/resources.py): the file and the Python API keep
them, validation names the card and the resource, blocks hand theirs to their body cards, and they change no
cache key (placement, not computation)."""

import pytest

import cardloop
from cardloop.errors import PipelineInvalid
from cardloop.pipeline.fileformat import load_pipeline, pipeline_from_dict
from cardloop.pipeline.resources import resources_within
from cardloop.pipeline.validate import check_pipeline, validate_pipeline
from tests.engine.test_blocks import repeated_batch

MODEL = {"id": "model", "type": "model_define", "config": {"input_dim": 3}}


def messages(resources):
    pipeline = pipeline_from_dict({"version": 1, "cards": [{**MODEL, "resources": resources}]})
    return [(problem.message, problem.card, problem.field) for problem in validate_pipeline(pipeline)]


def with_resources(csv):
    """The nested-loop pipeline with resources on a top-level card, the outer block and one body card."""
    pipeline = repeated_batch(csv, epochs=1, steps=1)
    pipeline.card("model").resources = {"cpu": 2, "memory": "4e9"}
    epochs = pipeline.card("epochs")
    epochs.resources = {"fake_gpu": 1, "cpu": 1}
    steps = next(card for card in epochs.body.cards if card.id == "steps")
    next(card for card in steps.body.cards if card.id == "fwd").resources = {"fake_gpu": 0.5}
    return pipeline


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_resources_on_cards_and_blocks_survive_a_save_and_load(regression_csv, tmp_path, suffix):
    pipeline = with_resources(regression_csv)
    loaded = load_pipeline(pipeline.save(tmp_path / f"p{suffix}"))
    assert loaded.to_dict() == pipeline.to_dict()
    assert loaded.card("epochs").to_dict()["resources"] == {"fake_gpu": 1, "cpu": 1}


def test_the_python_api_takes_resources_for_a_card_and_a_block():
    pipeline = cardloop.Pipeline("p")
    model = pipeline.add("model_define", "model", input_dim=3, resources={"gpu": 1})
    block = pipeline.add_block("epochs", times=2, inputs={"model": model["model"]}, resources={"cpu": 2})
    assert model.to_dict()["resources"] == {"gpu": 1} and "resources" not in model.config
    assert block.to_dict()["resources"] == {"cpu": 2}


def test_a_card_without_resources_writes_none():
    assert "resources" not in pipeline_from_dict({"version": 1, "cards": [MODEL]}).cards[0].to_dict()


def test_valid_resources_have_no_problems():
    assert messages({"cpu": 2, "gpu": 0.5, "memory": "4e9", "fake_gpu": 1, "accelerator_type:A100": 0.001}) == []


@pytest.mark.parametrize("resources, message", [
    ({"cpu": "two"}, "resources: 'cpu' is 'two'; it takes a non-negative number (such as 2, 0.5 or 4e9)"),
    ({"gpu": -1}, "resources: 'gpu' is -1; it takes a non-negative number"),
    ({"gpu": True}, "resources: 'gpu' is True; it takes a non-negative number"),
    ({"fake_gpu": float("nan")}, "resources: 'fake_gpu' is nan; it takes a non-negative number"),
    ({"memory": 1.5}, "resources: 'memory' is 1.5; it takes a whole number of bytes (such as 4e9)"),
    ({"fake_gpu": 1.5}, "resources: 'fake_gpu' is 1.5; an amount above 1 is a whole number"),
    ({"GPU": 1}, "resources: write 'gpu', not 'GPU'"),
    ({"two words": 1}, "resources: 'two words' is not a resource name; use cpu, gpu, memory or a custom"),
])
def test_a_bad_resource_is_named_with_the_card_and_what_is_valid(resources, message):
    [(text, card, field)] = messages(resources)
    assert text.startswith(f"card 'model': {message}") and card == "model"
    assert field == f"resources.{next(iter(resources))}"


def test_resources_that_are_no_mapping_are_refused_naming_the_card():
    with pytest.raises(PipelineInvalid, match="card 'model': 'resources' must be a mapping"):
        pipeline_from_dict({"version": 1, "cards": [{**MODEL, "resources": [2]}]})


def test_a_bad_resource_in_a_block_body_is_named_by_its_block_path(regression_csv):
    pipeline = repeated_batch(regression_csv, epochs=1, steps=1)
    steps = next(card for card in pipeline.card("epochs").body.cards if card.id == "steps")
    next(card for card in steps.body.cards if card.id == "fwd").resources = {"cpu": -2}
    [problem] = validate_pipeline(pipeline)
    assert problem.card == "epochs.steps.fwd" and "resources: 'cpu' is -2" in problem.message


def test_a_blocks_resources_apply_to_its_body_cards_unless_one_names_its_own(regression_csv):
    pipeline = with_resources(regression_csv)
    checked = check_pipeline(pipeline)
    found = {card.path: card.amounts for card in resources_within(
        (card, c.card_type, c.config) for card, c in zip(pipeline.cards, checked))}
    assert found["model"] == {"gpu": 1, "cpu": 2, "memory": 4e9}  # model_define's own gpu, then the card's
    assert found["epochs"] == found["epochs.steps"] == found["epochs.steps.zero"] == {"fake_gpu": 1, "cpu": 1}
    assert found["epochs.steps.fwd"] == {"fake_gpu": 0.5, "cpu": 1}
    assert found["data"] == {}


def test_resources_change_no_cache_key_and_a_run_with_them_is_served_from_the_cache(regression_csv, store):
    plain = repeated_batch(regression_csv, epochs=1, steps=1)
    first = cardloop.run(plain, store=store, threads=1)
    second = cardloop.run(with_resources(regression_csv), store=store, threads=1)
    assert second.executed == [] and second.cached == first.executed
    assert second.metrics() == first.metrics()


def test_the_process_executor_accepts_resources_and_ignores_them(regression_csv, store):
    result = cardloop.run(with_resources(regression_csv), store=store, executor="process", threads=1)
    local = cardloop.run(repeated_batch(regression_csv, epochs=1, steps=1), store=store, threads=1, cache=False)
    assert result.status == "succeeded" and result.metrics() == local.metrics()
