"""`model_define` against a hand-built torch.nn.Sequential (the MLP and the CNNs) or the user's class built by
hand, its config rules, a CNN trained through the pipeline on both executors; and `model_clone`'s independence."""

import subprocess
import sys

import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import cardloop
from cardloop.cards.model import ModelDefineConfig, model_clone, model_define, resolve_device
from cardloop.cards.registry import load_card_file
from cardloop.cards.spec import NoConfig
from cardloop.datasets import DIGITS_CSV
from cardloop.engine import process
from cardloop.errors import CardError, PipelineInvalid
from cardloop.models import architecture_of, model_device
from cardloop.pipeline.model import Pipeline
from cardloop.pipeline.validate import check_pipeline
from tests.model_files import hand_net_weights, write_model_file
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


# --- model_define: the CNNs ----------------------------------------------------------------------------------

DIGITS = {"input_dim": 64, "architecture": "cnn2d", "input_shape": [1, 8, 8]}


def test_a_2d_cnn_has_the_weights_and_outputs_of_a_hand_built_sequential_after_manual_seed():
    model = define(**DIGITS, channels=[4, 6], layers=[12], output_dim=10, seed=5)
    torch.manual_seed(5)
    expected = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(24, 12), nn.ReLU(), nn.Linear(12, 10))
    assert_same_weights(model, expected)
    x = torch.randn(7, 64)
    assert torch.equal(model(x), expected(x))


def test_a_1d_cnn_with_avg_pooling_dropout_and_gelu_is_the_hand_built_sequential():
    model = define(input_dim=12, architecture="cnn1d", input_shape=[2, 6], channels=[3], kernel_size=5, pool="avg",
                   activation="gelu", dropout=0.25, layers=[], output_dim=2, seed=9).eval()
    torch.manual_seed(9)
    expected = nn.Sequential(nn.Unflatten(1, (2, 6)), nn.Conv1d(2, 3, 5, padding=2), nn.GELU(), nn.AvgPool1d(2),
                             nn.Dropout(0.25), nn.Flatten(), nn.Linear(9, 2)).eval()
    assert_same_weights(model, expected)
    x = torch.randn(4, 12)
    assert torch.equal(model(x), expected(x))


def test_a_cnn_without_pooling_keeps_the_sizes_into_its_head():
    model = define(**DIGITS, channels=[2], pool="none", layers=[])
    assert model[-1].in_features == 2 * 8 * 8


def test_a_1d_cnn_reads_the_features_as_one_channel_by_default():
    assert ModelDefineConfig(input_dim=12, architecture="cnn1d").input_shape == [1, 12]


def test_a_cnn_defaults_to_channels_16_and_32_kernel_3_and_max_pooling():
    config = ModelDefineConfig(**DIGITS)
    assert (config.channels, config.kernel_size, config.pool) == ([16, 32], 3, "max")


def test_the_mlp_keeps_no_cnn_settings():
    config = ModelDefineConfig(input_dim=4)
    assert (config.architecture, config.input_shape, config.channels, config.kernel_size, config.pool) == \
        ("mlp", None, None, None, None)


def test_a_cnn_records_the_recipe_that_rebuilds_it():
    assert architecture_of(define(**DIGITS, channels=[4], layers=[], output_dim=10)) == {"name": "cnn2d", "config": {
        "input_shape": [1, 8, 8], "channels": [4], "kernel_size": 3, "pool": "max", "layers": [],
        "activation": "relu", "output_dim": 10, "dropout": 0.0}}


@pytest.mark.parametrize(("config", "field", "message"), [
    ({"input_shape": [1, 4]}, "input_shape", "applies only to architecture cnn1d or cnn2d"),
    ({"channels": [8]}, "channels", "applies only to architecture cnn1d or cnn2d"),
    ({"kernel_size": 3}, "kernel_size", "applies only to architecture cnn1d or cnn2d"),
    ({"pool": "avg"}, "pool", "applies only to architecture cnn1d or cnn2d"),
    ({"architecture": "cnn2d"}, "input_shape", r"architecture cnn2d needs it: \[channels, height, width\]"),
    ({"architecture": "cnn2d", "input_shape": [1, 2, 2]}, "pool", r"2 convolutions each pooled by 2 leave "
                                                                  r"input_shape \[1, 2, 2\] no positions \(\[0, 0\]\)"),
    ({"architecture": "cnn2d", "input_shape": [4, 1]}, "input_shape", r"architecture cnn2d reads \[channels, height, "
                                                                      r"width\], 3 sizes, not 2"),
    ({"architecture": "cnn1d", "input_shape": [3, 2]}, "input_shape", r"its product 6 must equal input_dim \(4\)"),
    ({"architecture": "cnn1d", "kernel_size": 4}, "kernel_size", "must be odd"),
    ({"architecture": "cnn1d", "channels": [2, 2, 2]}, "pool", r"3 convolutions each pooled by 2 leave input_shape "
                                                               r"\[1, 4\] no positions \(\[0\]\); use fewer channels "
                                                               "or pool: none"),
    ({"architecture": "cnn1d", "channels": []}, "channels", "at least 1 item"),
    ({"architecture": "cnn1d", "module": "x:Net"}, "module", "replaces architecture"),
    ({"layers": [8], "module": "x:Net"}, "module", r"config field\(s\) layers do not apply to it; give the class its "
                                                   "sizes in kwargs"),
    ({"kwargs": {"hidden": 3}}, "kwargs", "applies only with config field 'module'"),
])
def test_a_setting_that_does_not_fit_the_architecture_is_refused_naming_its_field(config, field, message):
    with pytest.raises(ValidationError, match=message) as refused:
        ModelDefineConfig(input_dim=4, **config)
    assert refused.value.errors()[0]["loc"] == (field,)


def test_a_cnn_that_pools_past_one_position_passes_with_pool_none():
    assert ModelDefineConfig(input_dim=4, architecture="cnn1d", channels=[2, 2, 2], pool="none").pool == "none"


# --- model_define: a class of a card file ----------------------------------------------------------------------


@pytest.fixture
def nets(tmp_path) -> str:
    """The name of a freshly loaded card file that defines Net (and no card types)."""
    path = write_model_file(tmp_path)
    load_card_file(path)
    return path.stem


def test_a_card_file_class_has_the_weights_plain_pytorch_draws_after_manual_seed(nets):
    model = define(module=f"{nets}:Net", kwargs={"input_dim": 4, "hidden": 6}, seed=21)
    for built, expected in zip(model.parameters(), hand_net_weights(21, 4, 6), strict=True):
        assert torch.equal(built, expected)


def test_a_card_file_class_records_its_module_kwargs_and_card_file(nets, tmp_path):
    model = define(module=f"{nets}:Net", kwargs={"input_dim": 4})
    assert architecture_of(model) == {"name": "module", "config": {
        "module": f"{nets}:Net", "kwargs": {"input_dim": 4},
        "source": {"card_file": str((tmp_path / f"{nets}.py").resolve())}}}


def test_a_class_the_kwargs_do_not_build_fails_the_card_naming_the_kwargs(nets):
    with pytest.raises(CardError, match=r"could not be built with config field 'kwargs' \{'hidden': 3\}: TypeError"):
        define(module=f"{nets}:Net", kwargs={"hidden": 3})


def test_a_function_named_as_the_module_fails_the_card_naming_the_field(nets):
    with pytest.raises(CardError, match=rf"model class '{nets}:helper' \(config field 'module'\): 'helper' of card "
                                        r"file .* is a function, not an nn.Module subclass"):
        define(module=f"{nets}:helper")


def test_kwargs_that_are_not_json_are_refused():
    with pytest.raises(ValidationError, match="must be JSON") as refused:
        ModelDefineConfig(input_dim=4, module="os:system", kwargs={"width": float("nan")})
    assert refused.value.errors()[-1]["loc"] == ("kwargs",)


def test_a_pipeline_naming_a_module_outside_the_card_files_is_invalid_naming_card_field_and_what_is_valid():
    p = Pipeline(name="unsafe")
    p.add("model_define", "model", input_dim=4, module="os:system")
    with pytest.raises(PipelineInvalid, match=r"card 'model' \(model_define\): config field 'module' is 'os:system': "
                                              r"'os' is neither a card file loaded in this process nor an installed "
                                              r"card pack"):
        check_pipeline(p)


# --- model_define: trained through the pipeline -----------------------------------------------------------------


@pytest.fixture
def _fresh_workers():
    process.stop_workers()
    yield
    process.stop_workers()


def digits_pipeline(steps: int, model: dict) -> Pipeline:
    p = Pipeline(name="digits-cnn")
    data = p.add("data_load", "data", path="cardloop:digits.csv")
    made = p.add("model_define", "model", seed=4, device="cpu", **model)
    opt = p.add("training_init_optimizer", "opt", model=made["model"], optimizer_type="adam", learning_rate=0.01)
    p.add("training_loop", "loop", train_dataset=data["dataset"], model=made["model"], optimizer=opt["optimizer"],
          batch_size=64, num_batches=steps, loss_type="mse")
    return p


def hand_trained(model: nn.Module, steps: int) -> nn.Module:
    frame = pd.read_csv(DIGITS_CSV)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _, (xb, yb) in zip(range(steps), DataLoader(TensorDataset(X, y), batch_size=64)):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(xb), yb).backward()
        optimizer.step()
    return model


@pytest.mark.usefixtures("_fresh_workers")
@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_2d_cnn_trained_on_the_digits_by_the_pipeline_equals_the_hand_written_loop(executor, store):
    result = cardloop.run(digits_pipeline(4, {**DIGITS, "channels": [4, 8], "layers": [16]}), store=store,
                          executor=executor, threads=1)
    torch.manual_seed(4)
    expected = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))
    trained = cardloop.load_output(result.run_id, "loop", "model", store=store)
    assert_same_weights(trained, hand_trained(expected, 4))
    assert all(p.grad is not None for p in trained.parameters())


@pytest.mark.usefixtures("_fresh_workers")
@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_card_file_class_trains_as_the_hand_written_loop_even_in_a_worker_process(executor, store, tmp_path):
    path = write_model_file(tmp_path)  # it defines no card type: the worker loads it for the model's sake
    pipeline = digits_pipeline(3, {"input_dim": 64, "module": f"{path.stem}:Net", "kwargs": {"input_dim": 64}})
    result = cardloop.run(pipeline, store=store, executor=executor, cards=[path], threads=1)
    expected = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 1))
    for layer, weights in zip((expected[0], expected[2]), (hand_net_weights(4, 64)[:2], hand_net_weights(4, 64)[2:])):
        layer.weight.data, layer.bias.data = weights[0].detach().clone(), weights[1].detach().clone()
    trained = cardloop.load_output(result.run_id, "loop", "model", store=store)
    for got, want in zip(trained.parameters(), hand_trained(expected, 3).parameters(), strict=True):
        assert torch.equal(got, want)


def test_the_card_module_imports_first_in_a_fresh_process():
    script = "from cardloop.cards.model import model_define; print(model_define.id)"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() == "model_define"


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
