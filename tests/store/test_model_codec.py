"""The model codec: weights, buffers, gradients, flags and recipe survive; bytes depend on content only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cardloop.errors import StoreError
from cardloop.models import build_model, register_architecture, set_architecture
from cardloop.store.codec import AS_STORED
from cardloop.store.codecs import CodecContext, codec_for_kind
from tests.devices import needs_cuda
from tests.undecodable import with_metadata

CODEC = codec_for_kind("model")
CTX = CodecContext()


@register_architecture("test_norm_net")
def build_norm_net(config):
    width = config["width"]
    return torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.BatchNorm1d(width), torch.nn.Dropout(0.5))


def round_trip(model, ctx=CTX):
    return CODEC.decode(CODEC.encode(model, ctx), ctx)


def with_gradients(model):
    dtype = next(model.parameters()).dtype
    model(torch.randn(6, 4, dtype=dtype)).pow(2).sum().backward()
    return model


def test_weights_and_gradients_come_back_equal(make_mlp):
    model = with_gradients(make_mlp())
    restored = round_trip(model)
    for (name, p), (_, q) in zip(model.named_parameters(), restored.named_parameters(), strict=True):
        assert torch.equal(p, q), name
        assert torch.equal(p.grad, q.grad), name


def test_a_missing_gradient_stays_missing(make_mlp):
    model = with_gradients(make_mlp())
    model[0].bias.grad = None
    restored = round_trip(model)
    assert restored[0].bias.grad is None
    assert restored[0].weight.grad is not None


def test_a_model_that_never_ran_backward_has_no_gradients_after_loading(make_mlp):
    restored = round_trip(make_mlp())
    assert all(p.grad is None for p in restored.parameters())


def test_buffers_train_eval_flags_and_frozen_parameters_are_restored():
    torch.manual_seed(0)
    net = build_model({"name": "test_norm_net", "config": {"width": 4}})
    net(torch.randn(8, 4))
    net.eval()
    net[1].train()
    net[0].bias.requires_grad_(False)
    restored = round_trip(net)
    assert torch.equal(restored[1].running_mean, net[1].running_mean)
    assert int(restored[1].num_batches_tracked) == 1
    assert [m.training for m in restored.modules()] == [m.training for m in net.modules()]
    assert not restored[0].bias.requires_grad and restored[0].weight.requires_grad


def test_a_model_stored_without_a_list_of_frozen_parameters_loads_with_every_parameter_trainable(make_mlp):
    model = make_mlp()
    model[0].bias.requires_grad_(False)
    restored = CODEC.decode(with_metadata(CODEC.encode(model, CTX), lambda metadata: metadata.pop("frozen")), CTX)
    assert all(p.requires_grad for p in restored.parameters())


def test_the_parameter_dtype_is_kept(make_mlp):
    model = with_gradients(make_mlp().double())
    restored = round_trip(model)
    assert restored[0].weight.dtype == torch.float64 and restored[0].weight.grad.dtype == torch.float64
    assert torch.equal(restored[0].weight, model[0].weight)


def test_a_module_without_an_architecture_recipe_is_refused_with_the_fix():
    with pytest.raises(StoreError, match="register_architecture"):
        CODEC.encode(torch.nn.Linear(2, 2), CTX)


def test_a_recipe_that_is_not_registered_here_cannot_be_rebuilt():
    model = torch.nn.Linear(2, 2)
    set_architecture(model, "nowhere_registered", {})
    with pytest.raises(StoreError, match="nowhere_registered"):
        CODEC.decode(CODEC.encode(model, CTX), CTX)


def test_a_recipe_asking_for_160_gb_is_refused_before_anything_is_allocated(make_mlp):
    huge = with_metadata(CODEC.encode(make_mlp(), CTX),
                         lambda m: m["architecture"]["config"].update(input_dim=200_000, layers=[200_000, 200_000]))
    with pytest.raises(StoreError, match=r"'0.weight' has shape \[8, 4\] stored but \[200000, 200000\]"):
        CODEC.decode(huge, CTX)


@register_architecture("test_scratch_net")
def build_scratch_net(config):
    """A Linear layer and a buffer kept out of the state dict, as large as the recipe says."""
    net = torch.nn.Linear(4, 4)
    net.register_buffer("scratch", torch.zeros(config["scratch"]), persistent=False)
    return net


def test_a_recipe_whose_unstored_buffers_outweigh_its_weights_is_refused_before_allocating():
    net = build_model({"name": "test_scratch_net", "config": {"scratch": 1}})
    huge = with_metadata(CODEC.encode(net, CTX), lambda m: m["architecture"]["config"].update(scratch=40 * 2**30))
    with pytest.raises(StoreError, match="would build a model of 42,949,672,980 elements for 20 stored ones"):
        CODEC.decode(huge, CTX)


def test_a_recipe_with_unstored_buffers_no_larger_than_its_weights_is_rebuilt():
    net = build_model({"name": "test_scratch_net", "config": {"scratch": 20}})
    assert CODEC.decode(CODEC.encode(net, CTX), CTX).scratch.shape == (20,)


def test_rebuilding_a_stored_model_twice_draws_the_same_numbers_as_rebuilding_it_once(make_mlp):
    data = CODEC.encode(make_mlp(), CTX)
    torch.manual_seed(5)
    CODEC.decode(data, CTX)  # the first decode checks the recipe on the meta device, the second remembers it
    after_first = torch.get_rng_state()
    CODEC.decode(data, CTX)
    torch.manual_seed(5)
    build_model({"name": "mlp", "config": {"input_dim": 4, "layers": [8, 8], "activation": "tanh"}})
    assert torch.equal(after_first, torch.get_rng_state())


def test_the_stored_bytes_hold_cpu_tensors_and_the_recipe_as_json(make_mlp):
    data = CODEC.encode(make_mlp(), CTX)
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    recipe = json.loads(header["__metadata__"]["cardloop"])["architecture"]
    assert recipe["name"] == "mlp" and recipe["config"]["layers"] == [8, 8]


def test_equal_weights_give_identical_bytes_in_this_and_another_process(make_mlp):
    model = with_gradients(make_mlp(seed=3))
    assert CODEC.encode(round_trip(model), CTX) == CODEC.encode(model, CTX)
    script = ("import sys, torch; from cardloop.models import build_model; "
              "from cardloop.store.codecs import codec_for_kind, CodecContext; torch.manual_seed(3); "
              "m = build_model({'name': 'mlp', 'config': {'input_dim': 4, 'layers': [8, 8], 'activation': 'tanh'}}); "
              "sys.stdout.buffer.write(codec_for_kind('model').encode(m, CodecContext()))")
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout
    assert there == CODEC.encode(make_mlp(seed=3), CTX)


def test_the_summary_has_architecture_counts_shapes_norms_and_gradient_presence(make_mlp):
    model = with_gradients(make_mlp())
    model[0].bias.grad = None
    summary = CODEC.summarize(model)
    assert summary["architecture"]["name"] == "mlp"
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    assert summary["has_gradients"] and summary["training"]
    assert summary["tensors"]["0.weight"]["shape"] == [8, 4]
    assert summary["tensors"]["0.weight"]["norm"] == pytest.approx(model[0].weight.norm().item(), rel=1e-5)
    assert summary["tensors"]["0.bias"]["grad_norm"] is None
    json.dumps(summary, allow_nan=False)


def test_the_model_is_moved_to_the_requested_device(make_mlp):
    restored = round_trip(with_gradients(make_mlp()), CodecContext(device="meta"))
    assert restored[0].weight.device.type == "meta" and restored[0].weight.grad.device.type == "meta"


@needs_cuda
def test_a_gpu_model_is_stored_from_cpu_and_loaded_onto_the_gpu(make_mlp):
    model = make_mlp().cuda()
    model(torch.randn(6, 4, device="cuda")).pow(2).sum().backward()
    data = CODEC.encode(model, CTX)
    assert CODEC.encode(round_trip(model, CodecContext(device="cuda")), CTX) == data  # same bytes back on the GPU
    restored = CODEC.decode(data, CodecContext(device=AS_STORED))  # the device it was stored from
    assert CODEC.encode(CODEC.decode(data, CTX), CTX) != data  # moved to the CPU, the model records that
    assert restored[0].weight.is_cuda and restored[0].weight.grad.is_cuda
    assert torch.equal(restored[0].weight, model[0].weight)
    assert torch.equal(restored[0].weight.grad, model[0].weight.grad)
    on_cpu = CODEC.decode(data, CTX)
    assert torch.equal(on_cpu[0].weight.grad, model[0].weight.grad.cpu())


def test_a_model_records_the_kind_of_device_it_was_stored_from(make_mlp):
    from cardloop.store import safetensors_format

    _, metadata = safetensors_format.unpack(CODEC.encode(make_mlp(), CTX), CODEC.format)
    assert metadata["device"] == "cpu"


def test_as_stored_puts_a_model_back_on_its_device_or_on_the_cpu_where_there_is_none(make_mlp, monkeypatch):
    from cardloop.store import model_codec
    from cardloop.store.codec import AS_STORED

    monkeypatch.setattr(model_codec, "model_device", lambda module: torch.device("cuda"))  # stored from a GPU
    data = CODEC.encode(make_mlp(), CTX)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = CODEC.decode(data, CodecContext(device=AS_STORED))
    assert next(restored.parameters()).device.type == "cpu"


CNN2D = {"name": "cnn2d", "config": {"input_shape": [2, 4, 4], "channels": [3], "kernel_size": 3, "pool": "avg",
                                     "layers": [5], "activation": "tanh", "output_dim": 2, "dropout": 0.1}}


def test_a_cnn_comes_back_with_its_recipe_weights_gradients_and_outputs():
    torch.manual_seed(2)
    model = build_model(CNN2D)
    model(torch.randn(6, 32)).pow(2).sum().backward()
    restored = round_trip(model)
    assert restored._cardloop_architecture == CNN2D
    for (name, p), (_, q) in zip(model.named_parameters(), restored.named_parameters(), strict=True):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad), name
    x = torch.randn(3, 32)
    assert torch.equal(restored.eval()(x), model.eval()(x))


@pytest.fixture
def net_file(tmp_path):
    """A freshly loaded card file that defines Net, and a trained Net of it."""
    from cardloop.cards.registry import load_card_file
    from tests.model_files import write_model_file

    path = write_model_file(tmp_path)
    load_card_file(path)
    torch.manual_seed(0)
    net = build_model({"name": "module", "config": {"module": f"{path.stem}:Net", "kwargs": {"input_dim": 4},
                                                    "source": {"card_file": str(path.resolve())}}})
    net(torch.randn(6, 4)).pow(2).sum().backward()
    return path, net


def test_a_card_file_class_comes_back_with_its_weights_gradients_and_recipe(net_file):
    _, net = net_file
    restored = round_trip(net)
    assert type(restored) is type(net) and restored._cardloop_architecture == net._cardloop_architecture
    for (name, p), (_, q) in zip(net.named_parameters(), restored.named_parameters(), strict=True):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad), name


DECODE_ELSEWHERE = """
import sys
from pathlib import Path
from cardloop.cards.registry import load_card_file
from cardloop.errors import StoreError
from cardloop.store.codecs import CodecContext, codec_for_kind
if len(sys.argv) > 2:
    load_card_file(sys.argv[2])
try:
    net = codec_for_kind("model").decode(Path(sys.argv[1]).read_bytes(), CodecContext())
except StoreError as error:
    print(error)
else:
    print(type(net).__name__, float(sum(p.detach().double().sum() for p in net.parameters())))
"""


def test_a_new_process_that_loads_the_card_file_rebuilds_the_same_model(net_file, tmp_path):
    path, net = net_file
    (tmp_path / "net.safetensors").write_bytes(CODEC.encode(net, CTX))
    out = subprocess.run([sys.executable, "-c", DECODE_ELSEWHERE, str(tmp_path / "net.safetensors"), str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["Net", repr(float(sum(p.detach().double().sum() for p in net.parameters())))]


def test_a_new_process_without_the_card_file_refuses_the_model_naming_the_file_to_load(net_file, tmp_path):
    path, net = net_file
    (tmp_path / "net.safetensors").write_bytes(CODEC.encode(net, CTX))
    out = subprocess.run([sys.executable, "-c", DECODE_ELSEWHERE, str(tmp_path / "net.safetensors")],
                         capture_output=True, text=True, check=True).stdout.strip()
    resolved = path.resolve()
    assert out == (f"the stored model cannot be rebuilt: model class '{path.stem}:Net' (config field 'module') comes "
                   f"from card file {resolved}, which is not loaded in this process; load it with --cards {resolved} "
                   "(in Python: cardloop.cards.registry.load_card_file)")


@pytest.mark.parametrize("spec", ["os:system", "builtins:eval"])
def test_a_stored_recipe_naming_a_module_outside_the_card_files_is_refused_and_nothing_is_imported(net_file, spec):
    _, net = net_file
    tampered = with_metadata(CODEC.encode(net, CTX), lambda m: m["architecture"]["config"].update(module=spec))
    with pytest.raises(StoreError, match=rf"the stored model cannot be rebuilt: model class '{spec}' \(config field "
                                         rf"'module'\): '{spec.split(':')[0]}' is neither a card file loaded in this "
                                         "process nor an installed card pack"):
        CODEC.decode(tampered, CTX)


def test_a_stored_recipe_naming_a_function_of_the_card_file_is_refused(net_file):
    path, net = net_file
    tampered = with_metadata(CODEC.encode(net, CTX),
                             lambda m: m["architecture"]["config"].update(module=f"{path.stem}:helper", kwargs={}))
    with pytest.raises(StoreError, match="is a function, not an nn.Module subclass"):
        CODEC.decode(tampered, CTX)
