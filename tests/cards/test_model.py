"""`model_define` against a hand-built torch.nn.Sequential, and `model_clone`'s independence."""

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from cardloop.cards.model import ModelDefineConfig, model_clone, model_define, resolve_device
from cardloop.models import model_device
from cardloop.cards.spec import NoConfig
from cardloop.errors import CardError
from cardloop.models import architecture_of
from tests.oracle import assert_same_weights

ACTIVATION_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def define(**config) -> nn.Module:
    return model_define.run(config=ModelDefineConfig(**{"input_dim": 4, "device": "cpu", **config}))["model"]


def clone(model: nn.Module) -> nn.Module:
    return model_clone.run(config=NoConfig(), model=model)["model"]


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --- model_define --------------------------------------------------------------------------------------------


def test_model_define_builds_linear_activation_and_dropout_per_hidden_layer_then_a_final_linear():
    model = define(layers=[8, 5], activation="tanh", dropout=0.1)
    assert [type(layer) for layer in model] == [nn.Linear, nn.Tanh, nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout,
                                                nn.Linear]


def test_model_define_chains_the_layer_widths_from_input_dim_to_output_dim():
    model = define(input_dim=3, layers=[8, 5], output_dim=2)
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(3, 8), (8, 5), (5, 2)]


def test_model_define_without_dropout_has_no_dropout_layers():
    assert not any(isinstance(layer, nn.Dropout) for layer in define(layers=[8, 5]))


def test_model_define_applies_the_configured_dropout_probability():
    assert all(layer.p == 0.3 for layer in define(layers=[8, 5], dropout=0.3) if isinstance(layer, nn.Dropout))


def test_model_define_with_no_hidden_layers_is_one_linear():
    model = define(layers=[], output_dim=2)
    assert [type(layer) for layer in model] == [nn.Linear] and model[0].out_features == 2


def test_the_same_seed_gives_the_weights_of_a_hand_built_sequential_after_manual_seed():
    model = define(layers=[8, 5], activation="gelu", output_dim=2, dropout=0.2, seed=123)
    torch.manual_seed(123)
    expected = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Dropout(0.2), nn.Linear(8, 5), nn.GELU(), nn.Dropout(0.2),
                             nn.Linear(5, 2))
    assert_same_weights(model, expected)


def test_the_same_seed_gives_the_same_weights_whatever_ran_before():
    first = define(seed=7)
    torch.rand(100)
    assert_same_weights(define(seed=7), first)


def test_different_seeds_give_different_weights():
    assert not torch.equal(define(seed=1)[0].weight, define(seed=2)[0].weight)


@pytest.mark.parametrize("activation", sorted(ACTIVATION_MODULES))
def test_each_activation_choice_builds_its_module(activation):
    model = define(layers=[8, 5], activation=activation)
    assert isinstance(model[1], ACTIVATION_MODULES[activation]) and isinstance(model[3], ACTIVATION_MODULES[activation])


def test_an_unknown_activation_is_refused_by_the_config():
    with pytest.raises(ValidationError, match="activation"):
        ModelDefineConfig(input_dim=4, activation="swish")


def test_the_model_predicts_output_dim_values_per_row():
    assert define(layers=[8], output_dim=3)(torch.randn(5, 4)).shape == (5, 3)


def test_output_dim_defaults_to_one():
    assert define(layers=[8])[-1].out_features == 1


def test_the_config_defaults_are_two_hidden_layers_of_64_relu_no_dropout_seed_0_device_auto():
    config = ModelDefineConfig(input_dim=4)
    assert (config.layers, config.activation, config.output_dim, config.dropout, config.seed, config.device) == \
        ([64, 64], "relu", 1, 0.0, 0, "auto")


@pytest.mark.parametrize("field", [{"input_dim": 0}, {"output_dim": 0}, {"dropout": 1.0}, {"dropout": -0.1},
                                   {"layers": [8, 0]}])
def test_out_of_range_config_values_are_refused(field):
    with pytest.raises(ValidationError, match=next(iter(field))):
        ModelDefineConfig(**{"input_dim": 4, **field})


@pytest.mark.parametrize("field", [{"input_dim": 2**63}, {"output_dim": 2**63}, {"layers": [8, 2**63]},
                                   {"seed": 2**64}, {"seed": -(2**63) - 1}])
def test_config_values_torch_cannot_hold_are_refused(field):
    with pytest.raises(ValidationError, match=next(iter(field))):
        ModelDefineConfig(**{"input_dim": 4, **field})


@pytest.mark.parametrize("seed", [2**64 - 1, -(2**63)])
def test_the_extreme_seeds_torch_takes_build_a_model(seed):
    assert isinstance(define(seed=seed), nn.Module)


def test_an_unknown_config_key_is_refused():
    with pytest.raises(ValidationError, match="hidden"):
        ModelDefineConfig(input_dim=4, hidden=[8])


def test_device_cpu_puts_every_parameter_on_the_cpu():
    assert all(p.device.type == "cpu" for p in define(device="cpu").parameters())


def test_device_cuda_without_cuda_is_a_clear_card_error(no_cuda):
    with pytest.raises(CardError, match="config field 'device' is 'cuda' but no CUDA device is available; "
                                        "use 'auto' or 'cpu'"):
        define(device="cuda")


def test_device_auto_without_cuda_means_cpu(no_cuda):
    assert resolve_device("auto") == "cpu"
    assert model_device(define(device="auto")).type == "cpu"


def test_device_auto_with_cuda_means_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_model_device_of_a_model_without_parameters_is_the_cpu():
    assert model_device(nn.ReLU()) == torch.device("cpu")


def test_the_defined_model_records_its_architecture_for_the_store():
    model = define(input_dim=3, layers=[8], activation="tanh", output_dim=2, dropout=0.1)
    assert architecture_of(model) == {"name": "mlp", "config": {
        "input_dim": 3, "layers": [8], "activation": "tanh", "output_dim": 2, "dropout": 0.1}}


def test_model_define_asks_for_a_gpu_and_declares_one_model_output():
    assert model_define.resources == {"gpu": 1}
    assert [(p.name, p.kind) for p in model_define.outputs] == [("model", "model")] and model_define.inputs == ()


# --- model_clone ---------------------------------------------------------------------------------------------


def test_model_clone_copies_the_weights_exactly():
    original = define(layers=[8])
    assert_same_weights(clone(original), original)


def test_changing_the_clone_leaves_the_original_unchanged():
    original = define(layers=[8])
    before = {name: p.detach().clone() for name, p in original.named_parameters()}
    copy = clone(original)
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.add_(1.0)
    assert all(torch.equal(p, before[name]) for name, p in original.named_parameters())


def test_training_the_clone_leaves_the_original_without_gradients():
    original = define(layers=[8])
    copy = clone(original)
    copy(torch.randn(5, 4)).sum().backward()
    assert all(p.grad is None for p in original.parameters())
    assert all(p.grad is not None for p in copy.parameters())


def test_model_clone_copies_gradients_into_separate_tensors():
    original = define(layers=[8])
    original(torch.randn(5, 4)).sum().backward()
    copy = clone(original)
    for mine, theirs in zip(copy.parameters(), original.parameters()):
        assert torch.equal(mine.grad, theirs.grad) and mine.grad.data_ptr() != theirs.grad.data_ptr()


def test_the_clone_keeps_the_architecture_recipe():
    original = define(layers=[8], activation="sigmoid")
    assert architecture_of(clone(original)) == architecture_of(original)


def test_the_clone_output_is_a_new_training_state():
    assert model_clone.output("model").state_of is None
