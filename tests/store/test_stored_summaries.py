"""Summaries of stored models and optimizers read from their bytes, without torch, equal the codecs' summaries
of the decoded values."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from cardloop.models import build_model
from cardloop.store.codecs import CodecContext, codec_for_kind
from cardloop.store.stored_summaries import summarize_model_bytes, summarize_optimizer_bytes
from tests.store.test_model_codec import with_gradients
from tests.store.test_optimizer_codec import OPTIMIZERS
from tests.undecodable import with_metadata

MODELS, OPTIMIZER_CODEC = codec_for_kind("model"), codec_for_kind("optimizer")


def assert_same_summary(from_bytes, summary):
    """Equal, but for the norms' last bits (NumPy and torch sum the squares in different orders)."""
    read, expected = from_bytes.pop("tensors"), summary.pop("tensors")
    assert list(read) == list(expected)
    for name, tensor in expected.items():
        assert (read[name]["shape"], read[name]["dtype"]) == (tensor["shape"], tensor["dtype"])
        for key in ("norm", "grad_norm"):
            assert read[name][key] == (None if tensor[key] is None else pytest.approx(tensor[key], rel=1e-12))
    assert from_bytes == summary


def test_a_trained_mlps_summary_is_read_from_its_bytes(make_mlp):
    model = with_gradients(make_mlp())
    from_bytes = summarize_model_bytes(MODELS.encode(model, CodecContext()))
    summary = MODELS.summarize(model)
    assert from_bytes["has_gradients"] and from_bytes["training"]
    assert_same_summary(from_bytes, summary)


def test_buffers_frozen_parameters_and_eval_mode_read_from_the_bytes_as_from_the_model():
    torch.manual_seed(0)
    model = build_model({"name": "test_norm_net", "config": {"width": 4}})
    model[0].bias.requires_grad_(False)
    model.eval()
    from_bytes = summarize_model_bytes(MODELS.encode(model, CodecContext()))
    assert "1.running_mean" not in from_bytes["tensors"]  # a buffer, not a parameter
    assert from_bytes["trainable"] == from_bytes["parameters"] - 4 and not from_bytes["training"]
    assert_same_summary(from_bytes, MODELS.summarize(model))


def test_a_model_stored_without_its_parameter_names_is_left_to_the_codec(make_mlp):
    data = with_metadata(MODELS.encode(make_mlp(), CodecContext()), lambda metadata: metadata.pop("parameters"))
    assert summarize_model_bytes(data) is None


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_an_optimizers_summary_is_read_from_its_bytes(name, make_mlp, train_steps):
    model = make_mlp()
    optimizer = OPTIMIZERS[name](model)
    train_steps(model, optimizer, 2)
    assert summarize_optimizer_bytes(OPTIMIZER_CODEC.encode(optimizer, CodecContext(model=model))) \
        == OPTIMIZER_CODEC.summarize(optimizer)


def test_reading_the_summaries_imports_no_torch():
    script = ("import sys\nfrom cardloop.store import stored_summaries\n"
              "assert 'torch' not in sys.modules\nprint('no torch')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "no torch", done.stderr
