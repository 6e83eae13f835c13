"""Model recipes: a tagged module can be rebuilt from its JSON architecture alone."""

import json

import pytest
import torch

from cardloop import models
from cardloop.errors import RegistryError
from cardloop.models import (ACTIVATIONS, architecture_of, build_model, conv_output_shape, register_architecture,
                             set_architecture)

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


CNN2D = {"name": "cnn2d", "config": {"input_shape": [1, 8, 8], "channels": [4, 6], "kernel_size": 3, "pool": "max",
                                     "layers": [12], "activation": "relu", "output_dim": 10, "dropout": 0.0}}
CNN1D = {"name": "cnn1d", "config": {"input_shape": [2, 6], "channels": [3], "kernel_size": 5, "pool": "avg",
                                     "layers": [], "activation": "gelu", "output_dim": 2, "dropout": 0.5}}


@pytest.mark.parametrize("recipe", [CNN1D, CNN2D], ids=["cnn1d", "cnn2d"])
def test_a_cnn_is_rebuilt_from_its_json_recipe_with_the_same_layers_and_shapes(recipe):
    original = build_model(recipe)
    rebuilt = build_model(json.loads(json.dumps(architecture_of(original))))
    assert architecture_of(rebuilt) == recipe
    assert layer_types(rebuilt) == layer_types(original)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in original.state_dict().items()}


def test_the_2d_cnn_unflattens_then_convolves_activates_and_pools_per_channel_entry_then_flattens_into_the_head():
    assert layer_types(build_model(CNN2D)) == [
        torch.nn.Unflatten, torch.nn.Conv2d, torch.nn.ReLU, torch.nn.MaxPool2d, torch.nn.Conv2d, torch.nn.ReLU,
        torch.nn.MaxPool2d, torch.nn.Flatten, torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]


def test_the_1d_cnn_puts_dropout_after_each_pooling_and_goes_straight_to_the_output_without_hidden_layers():
    assert layer_types(build_model(CNN1D)) == [torch.nn.Unflatten, torch.nn.Conv1d, torch.nn.GELU,
                                               torch.nn.AvgPool1d, torch.nn.Dropout, torch.nn.Flatten, torch.nn.Linear]


def test_a_cnn_reads_flat_float32_rows_and_predicts_output_dim_values_per_row():
    assert build_model(CNN2D)(torch.randn(5, 64)).shape == (5, 10)
    assert build_model(CNN1D)(torch.randn(5, 12)).shape == (5, 2)


def test_same_padding_keeps_the_sizes_and_each_pooling_halves_them_rounding_down():
    assert conv_output_shape([1, 8, 8], [4, 6], "max") == [6, 2, 2]
    assert conv_output_shape([2, 7], [3, 5, 9], "avg") == [9, 0]
    assert conv_output_shape([1, 8, 8], [4, 6], "none") == [6, 8, 8]


def test_the_head_of_a_cnn_takes_the_flattened_size_of_the_last_convolution():
    assert build_model(CNN2D)[8].in_features == 6 * 2 * 2


def test_a_cnn_recipe_whose_input_shape_does_not_fit_its_dimension_is_refused():
    with pytest.raises(ValueError, match=r"input_shape \[1, 64\] has 2 sizes; a 2-D convolution reads 3"):
        build_model({"name": "cnn2d", "config": {**CNN2D["config"], "input_shape": [1, 64]}})


def test_a_module_recipe_rebuilds_the_class_of_its_loaded_card_file(tmp_path):
    from cardloop.cards.registry import load_card_file
    from tests.model_files import write_model_file

    path = write_model_file(tmp_path)
    load_card_file(path)
    recipe = {"name": "module", "config": {"module": f"{path.stem}:Net", "kwargs": {"input_dim": 3},
                                           "source": {"card_file": str(path.resolve())}}}
    net = build_model(recipe)
    assert type(net).__name__ == "Net" and architecture_of(net) == recipe
