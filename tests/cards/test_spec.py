"""The card SDK: what `@card` checks and registers, and what a card type says about itself."""

import importlib.util

import pytest
from pydantic import Field, ValidationError

from cardloop import kinds
from cardloop.cards.registry import Registry, default_registry
from cardloop.cards.spec import CardConfig, CardContext, CardType, NoConfig, Port, card
from cardloop.kinds import ANY, BATCH, BATCHES, INFO, MODEL, OPTIMIZER, SCALAR
from tests.cards.test_registry import isolated_default_registry  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("isolated_default_registry")


class ScaleConfig(CardConfig):
    factor: float = Field(default=2.0, gt=0, description="What to multiply by.")
    label: str = "scaled"


def declare(run, type_id: str = "spec_probe", **declaration) -> CardType:
    """Declare `run` as a card type in a fresh registry."""
    declaration.setdefault("registry", Registry())
    return card(type_id, title="Probe", category="test", **declaration)(run)


def two_inputs(config, model, batch_data):
    return {}


def load_function(path, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run


# --- registration --------------------------------------------------------------------------------------------


def test_card_registers_the_type_into_the_given_registry():
    registry = Registry()
    declared = declare(two_inputs, inputs=[Port("model", MODEL), Port("batch_data", BATCH)], registry=registry)
    assert registry.get("spec_probe") is declared


def test_card_registers_into_a_given_registry_that_already_holds_types():
    registry = Registry()
    registry.register(declare(lambda config: {}, "first"))
    declared = declare(two_inputs, inputs=[Port("model", MODEL), Port("batch_data", BATCH)], registry=registry)
    assert registry.get("spec_probe") is declared


def test_card_without_a_registry_registers_into_the_default_registry():
    declared = declare(two_inputs, inputs=[Port("model", MODEL), Port("batch_data", BATCH)], registry=None)
    assert default_registry().get("spec_probe") is declared


def test_card_returns_the_card_type_it_declares():
    declared = declare(two_inputs, inputs=[Port("model", MODEL), Port("batch_data", BATCH)],
                       outputs=[Port("predictions", "tensor")], config=ScaleConfig, version=3)
    assert (declared.id, declared.title, declared.category, declared.version) == ("spec_probe", "Probe", "test", 3)
    assert declared.input("batch_data").kind == BATCH and declared.output("predictions").kind == "tensor"
    assert declared.config_model is ScaleConfig and declared.run is two_inputs


def test_a_card_without_a_description_takes_its_docstring():
    def documented(config):
        """Say what it does."""
        return {}

    assert declare(documented).description == "Say what it does."


def test_a_card_without_a_config_takes_no_config():
    assert declare(lambda config: {}).config_model is NoConfig


# --- refusals ------------------------------------------------------------------------------------------------


def test_a_run_function_missing_an_input_port_is_refused_naming_the_card_type():
    def run(config, model):
        return {}

    with pytest.raises(ValueError, match=r"card type 'spec_probe': run function parameters \['config', 'model'\] "
                                         r"must be 'config', optionally 'ctx', and the input ports "
                                         r"\['model', 'batch_data'\]"):
        declare(run, inputs=[Port("model", MODEL), Port("batch_data", BATCH)])


def test_a_run_function_with_a_parameter_that_is_no_port_is_refused():
    with pytest.raises(ValueError, match="card type 'spec_probe': run function parameters"):
        declare(two_inputs, inputs=[Port("model", MODEL)])


def test_a_run_function_without_a_config_parameter_is_refused():
    def run(model):
        return {}

    with pytest.raises(ValueError, match="card type 'spec_probe': run function parameters"):
        declare(run, inputs=[Port("model", MODEL)])


def test_a_refused_card_type_is_not_registered():
    registry = default_registry()
    with pytest.raises(ValueError):
        declare(two_inputs, inputs=[Port("model", MODEL)], registry=None)
    assert "spec_probe" not in registry


def test_a_port_of_unknown_kind_is_refused_naming_the_port_and_the_known_kinds():
    with pytest.raises(ValueError, match=r"card type 'spec_probe': port 'image' has unknown kind 'picture'; "
                                         r"known kinds: any, batch,"):
        declare(lambda config: {}, outputs=[Port("image", "picture")])


def test_a_port_of_a_registered_custom_kind_is_accepted(monkeypatch):
    monkeypatch.setattr(kinds, "_custom_kinds", {})
    kinds.register_kind("picture", "an image tensor")
    assert declare(lambda config: {}, outputs=[Port("image", "picture")]).output("image").kind == "picture"


def test_state_of_pointing_to_a_non_state_input_is_refused():
    def run(config, batch_data):
        return {}

    with pytest.raises(ValueError, match=r"card type 'spec_probe': output 'model' continues the state of "
                                         r"'batch_data', which is not a state input of this card"):
        declare(run, inputs=[Port("batch_data", BATCH)], outputs=[Port("model", MODEL, state_of="batch_data")])


def test_state_of_pointing_to_a_missing_input_is_refused():
    with pytest.raises(ValueError, match="continues the state of 'optimizer', which is not a state input"):
        declare(two_inputs, inputs=[Port("model", MODEL), Port("batch_data", BATCH)],
                outputs=[Port("optimizer", OPTIMIZER, state_of="optimizer")])


def test_state_of_pointing_to_a_state_input_is_accepted():
    declared = declare(two_inputs, inputs=[Port("model", MODEL), Port("batch_data", BATCH)],
                       outputs=[Port("model", MODEL, state_of="model")])
    assert declared.output("model").state_of == "model"


def test_an_output_port_declared_twice_is_refused():
    with pytest.raises(ValueError, match=r"card type 'spec_probe' declares an output port twice: \['x', 'x'\]"):
        declare(lambda config: {}, outputs=[Port("x", SCALAR), Port("x", INFO)])


def test_an_input_port_named_ctx_is_refused():
    def run(config, ctx):
        return {}

    with pytest.raises(ValueError, match="card type 'spec_probe'"):
        declare(run, inputs=[Port("ctx", SCALAR)])


def test_an_input_port_named_config_is_refused():
    with pytest.raises(ValueError, match="card type 'spec_probe'"):
        declare(lambda config: {}, inputs=[Port("config", SCALAR)])


ITEMS = (Port("batch_data", BATCH), Port("batch_info", INFO))


def test_an_iterator_output_declares_its_item_ports():
    declared = declare(lambda config: {}, outputs=[Port("batches", BATCHES, items=ITEMS)])
    assert declared.output("batches").items == ITEMS


@pytest.mark.parametrize("kind", [ANY, MODEL])
def test_an_iterator_output_of_kind_any_or_training_state_is_refused(kind):
    with pytest.raises(ValueError, match=rf"card type 'spec_probe': iterator output 'batches' needs a kind of its "
                                         rf"own for its iterator, not '{kind}'"):
        declare(lambda config: {}, outputs=[Port("batches", kind, items=ITEMS)])


def test_an_item_port_whose_name_is_no_identifier_is_refused():
    with pytest.raises(ValueError, match=r"output 'batches' has an item port named 'batch data'; item port names "
                                         r"must be identifiers"):
        declare(lambda config: {}, outputs=[Port("batches", BATCHES, items=(Port("batch data", BATCH),))])


def test_an_item_port_of_unknown_kind_is_refused():
    with pytest.raises(ValueError, match=r"port 'x' has unknown kind 'picture'"):
        declare(lambda config: {}, outputs=[Port("batches", BATCHES, items=(Port("x", "picture"),))])


def test_an_item_port_declared_twice_is_refused():
    with pytest.raises(ValueError, match=r"output 'batches' declares an item port twice: \['x', 'x'\]"):
        declare(lambda config: {}, outputs=[Port("batches", BATCHES, items=(Port("x", BATCH), Port("x", INFO)))])


def test_an_item_port_that_carries_training_state_is_refused():
    with pytest.raises(ValueError, match=r"item port 'batches.m' must carry a plain value"):
        declare(lambda config: {}, outputs=[Port("batches", BATCHES, items=(Port("m", MODEL),))])


def test_an_input_with_items_is_refused():
    def run(config, batches):
        return {}

    with pytest.raises(ValueError, match=r"input 'batches' declares items; only an output can be an iterator"):
        declare(run, inputs=[Port("batches", BATCHES, items=ITEMS)])


# --- context -------------------------------------------------------------------------------------------------


def test_a_ctx_parameter_asks_for_the_context():
    def run(config, model, ctx):
        return {}

    assert declare(run, inputs=[Port("model", MODEL)]).wants_context


def test_a_run_function_without_ctx_does_not_ask_for_the_context():
    def run(config, model):
        return {}

    assert not declare(run, inputs=[Port("model", MODEL)]).wants_context


def test_the_context_names_the_card_port_that_feeds_an_input():
    ctx = CardContext("back", "training_backward", {"loss": "loss_card.loss"})
    assert ctx.source("loss") == "loss_card.loss"


def test_the_context_gives_an_empty_source_for_an_unconnected_input():
    assert CardContext("back", "training_backward").source("loss") == ""


# --- to_json -------------------------------------------------------------------------------------------------


def test_to_json_lists_the_ports_with_their_kinds():
    declared = declare(two_inputs,
                       inputs=[Port("model", MODEL, "the model"), Port("batch_data", BATCH, required=False)],
                       outputs=[Port("predictions", "tensor")])
    data = declared.to_json()
    assert data["inputs"] == [
        {"name": "model", "kind": "model", "description": "the model", "required": True},
        {"name": "batch_data", "kind": "batch", "description": "", "required": False},
    ]
    assert data["outputs"] == [{"name": "predictions", "kind": "tensor", "description": "", "required": True}]


def test_to_json_marks_state_continuations_and_metrics():
    outputs = [Port("model", MODEL, state_of="model"), Port("loss_value", SCALAR, metric=True)]
    data = declare(two_inputs, inputs=[Port("model", MODEL), Port("batch_data", BATCH)], outputs=outputs).to_json()
    assert data["outputs"][0]["state_of"] == "model" and data["outputs"][1]["metric"] is True
    assert "metric" not in data["outputs"][0] and "state_of" not in data["outputs"][1]


def test_to_json_lists_an_iterator_s_item_ports_and_nothing_for_other_ports():
    data = declare(lambda config: {}, outputs=[Port("batches", BATCHES, items=ITEMS), Port("n", SCALAR)]).to_json()
    assert data["outputs"][0]["items"] == [
        {"name": "batch_data", "kind": "batch", "description": "", "required": True},
        {"name": "batch_info", "kind": "info", "description": "", "required": True},
    ]
    assert "items" not in data["outputs"][1]


def test_to_json_contains_the_config_json_schema_with_defaults():
    schema = declare(lambda config: {}, config=ScaleConfig).to_json()["config_schema"]
    assert schema["properties"]["factor"] == {"default": 2.0, "description": "What to multiply by.",
                                              "exclusiveMinimum": 0, "title": "Factor", "type": "number"}
    assert schema["properties"]["label"]["default"] == "scaled"
    assert schema["additionalProperties"] is False


def test_to_json_carries_the_card_metadata():
    data = declare(lambda config: {}, deterministic=False, version=2, resources={"gpu": 1},
                   mutates_state=True).to_json()
    assert {key: data[key] for key in ("id", "title", "category", "deterministic", "version", "resources",
                                       "mutates_state")} == {
        "id": "spec_probe", "title": "Probe", "category": "test", "deterministic": False, "version": 2,
        "resources": {"gpu": 1}, "mutates_state": True}


# --- CardConfig ----------------------------------------------------------------------------------------------


def test_a_card_config_forbids_unknown_keys():
    with pytest.raises(ValidationError, match="factr"):
        ScaleConfig(factr=3.0)


def test_a_card_config_applies_its_defaults():
    assert ScaleConfig() == ScaleConfig(factor=2.0, label="scaled")


def test_a_card_config_is_frozen():
    config = ScaleConfig()
    with pytest.raises(ValidationError):
        config.factor = 3.0


def test_no_config_accepts_no_keys():
    with pytest.raises(ValidationError):
        NoConfig(anything=1)


# --- code_hash -----------------------------------------------------------------------------------------------


def hash_of_source(tmp_path, folder: str, source: str) -> str:
    path = tmp_path / folder / "card_source.py"
    path.parent.mkdir()
    path.write_text(source)
    run = load_function(path, f"spec_code_hash_{folder}")
    return CardType(id="probe", title="Probe", category="test", description="", inputs=(), outputs=(),
                    config_model=NoConfig, run=run).code_hash


def test_code_hash_changes_when_the_function_source_changes(tmp_path):
    before = hash_of_source(tmp_path, "v1", "def run(config):\n    return {'value': 1}\n")
    after = hash_of_source(tmp_path, "v2", "def run(config):\n    return {'value': 2}\n")
    assert before != after


HELPER_AND_CARD = "def helper():\n    return {helper}\n\n\ndef run(config):\n    return {{'value': helper()}}\n"


def test_code_hash_changes_when_a_helper_in_the_same_file_changes(tmp_path):
    before = hash_of_source(tmp_path, "v1", HELPER_AND_CARD.format(helper=1))
    after = hash_of_source(tmp_path, "v2", HELPER_AND_CARD.format(helper=2))
    assert before != after


def test_code_hash_is_the_one_of_the_file_as_it_was_when_the_card_was_declared(tmp_path):
    path = tmp_path / "declared.py"
    path.write_text(HELPER_AND_CARD.format(helper=1))
    declared = declare(load_function(path, "spec_code_hash_declared"))
    path.write_text(HELPER_AND_CARD.format(helper=2))  # edited after import: the old code is what runs
    assert declared.code_hash == hash_of_source(tmp_path, "v1", HELPER_AND_CARD.format(helper=1))


def test_code_hash_is_the_same_for_the_same_source_wherever_it_lives(tmp_path):
    source = "def run(config):\n    return {'value': 1}\n"
    assert hash_of_source(tmp_path, "a", source) == hash_of_source(tmp_path, "b", source)


def test_code_hash_is_sixteen_hex_digits():
    code_hash = declare(lambda config: {}).code_hash
    assert len(code_hash) == 16 and int(code_hash, 16) >= 0


def test_code_hash_of_a_function_without_source_is_still_a_digest():
    namespace: dict = {}
    exec("def run(config):\n    return {}\n", namespace)
    assert len(declare(namespace["run"]).code_hash) == 16
