"""Model recipes: a tagged module can be rebuilt from its JSON architecture alone."""

import json

import pytest
import torch

from cardloop import models
from cardloop.errors import RegistryError
from cardloop.models import ACTIVATIONS, architecture_of, build_model, register_architecture, set_architecture

MLP = {"name": "mlp", "config": {"input_dim": 3, "layers": [5, 4], "activation": "tanh", "output_dim": 2,
                                 "dropout": 0.25}}


def layer_types(module: torch.nn.Module) -> list[type]:
    return [type(layer) for layer in module]


def test_a_built_model_records_the_architecture_it_was_built_from():
    assert architecture_of(build_model(MLP)) == MLP


def test_a_recorded_architecture_survives_a_json_round_trip():
    recipe = json.loads(json.dumps(architecture_of(build_model(MLP))))
    assert recipe == MLP


def test_rebuilding_from_the_recorded_architecture_gives_the_same_layers_and_shapes():
    original = build_model(MLP)
    rebuilt = build_model(architecture_of(original))
    assert layer_types(rebuilt) == layer_types(original)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in original.state_dict().items()}


def test_the_rebuilt_model_loads_the_original_weights_exactly():
    original = build_model(MLP)
    rebuilt = build_model(architecture_of(original))
    rebuilt.load_state_dict(original.state_dict())
    x = torch.randn(7, 3)
    original.eval()
    rebuilt.eval()
    assert torch.equal(rebuilt(x), original(x))


def test_a_module_without_a_recipe_has_no_architecture():
    assert architecture_of(torch.nn.Linear(2, 1)) is None


def test_set_architecture_tags_any_module():
    module = torch.nn.Linear(2, 1)
    set_architecture(module, "mlp", {"input_dim": 2, "layers": [], "activation": "relu"})
    assert architecture_of(module) == {"name": "mlp",
                                       "config": {"input_dim": 2, "layers": [], "activation": "relu"}}


def test_an_unknown_architecture_names_it_and_lists_the_known_ones():
    with pytest.raises(RegistryError, match=r"no model architecture named 'resnet' is registered \(known: .*mlp"):
        build_model({"name": "resnet", "config": {}})


def test_a_registered_architecture_can_be_rebuilt_by_name(monkeypatch):
    monkeypatch.setattr(models, "_builders", dict(models._builders))

    @register_architecture("linear")
    def build_linear(config):
        return torch.nn.Linear(config["in"], config["out"])

    module = build_model({"name": "linear", "config": {"in": 4, "out": 2}})
    assert isinstance(module, torch.nn.Linear) and module.weight.shape == (2, 4)
    assert architecture_of(module) == {"name": "linear", "config": {"in": 4, "out": 2}}


def test_the_mlp_without_dropout_alternates_linear_and_activation_then_ends_linear():
    model = build_model({"name": "mlp", "config": {"input_dim": 3, "layers": [5, 4], "activation": "relu"}})
    assert layer_types(model) == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]


def test_the_mlp_output_dim_defaults_to_one():
    model = build_model({"name": "mlp", "config": {"input_dim": 3, "layers": [5], "activation": "relu"}})
    assert model[-1].out_features == 1


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_listed_activation_builds(activation):
    model = build_model({"name": "mlp", "config": {"input_dim": 3, "layers": [5], "activation": activation}})
    assert type(model[1]).__name__.lower() == activation
