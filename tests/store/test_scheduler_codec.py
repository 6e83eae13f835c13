"""The scheduler codec: no pickle, bound to the optimizer it acts on (checked on load), and a schedule that goes on
after a round trip exactly as torch's own scheduler goes on."""

from __future__ import annotations

import json

import pytest
import torch

from cardloop.cards.schedulers import LRSchedulerConfig, scheduler_recipe
from cardloop.errors import StoreError
from cardloop.schedulers import build_scheduler
from cardloop.store.codecs import CodecContext, codec_for_kind
from cardloop.store.safetensors_format import read_metadata
from tests.schedulers import SCHEDULERS, TYPES

CODEC = codec_for_kind("scheduler")
OPTIMIZERS = codec_for_kind("optimizer")
MODELS = codec_for_kind("model")


def made(scheduler_type: str, optimizer):
    config = LRSchedulerConfig(scheduler_type=scheduler_type, **SCHEDULERS[scheduler_type][0])
    return build_scheduler(optimizer, scheduler_recipe(config))


def step(model, scheduler, steps: int, train_steps, seed: int) -> list[float]:
    """`steps` optimizer steps, each followed by a scheduler step (plateau on a falling made-up metric)."""
    lrs = []
    for i in range(steps):
        train_steps(model, scheduler.optimizer, 1, seed=seed + i)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(1.0 / (i + 1))
        else:
            scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return lrs


def round_trip(model, scheduler):
    """Model, optimizer and scheduler as another process loads them: each over what it is bound to."""
    restored_model = MODELS.decode(MODELS.encode(model, CodecContext()), CodecContext())
    optimizer = OPTIMIZERS.decode(OPTIMIZERS.encode(scheduler.optimizer, CodecContext(model=model)),
                                  CodecContext(model=restored_model))
    data = CODEC.encode(scheduler, CodecContext(model=model, optimizer=scheduler.optimizer))
    return restored_model, CODEC.decode(data, CodecContext(model=restored_model, optimizer=optimizer))


def training(make_mlp, scheduler_type: str):
    model = make_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, made(scheduler_type, optimizer)


@pytest.mark.parametrize("scheduler_type", TYPES)
def test_a_reloaded_scheduler_goes_on_exactly_as_the_live_one(scheduler_type, make_mlp, train_steps):
    model, scheduler = training(make_mlp, scheduler_type)
    step(model, scheduler, 4, train_steps, seed=1)
    restored_model, restored = round_trip(model, scheduler)
    assert type(restored) is type(scheduler) and restored.state_dict() == scheduler.state_dict()
    assert restored.optimizer.param_groups[0]["lr"] == scheduler.optimizer.param_groups[0]["lr"]
    assert step(restored_model, restored, 6, train_steps, seed=10) == step(model, scheduler, 6, train_steps, seed=10)
    for (name, p), (_, q) in zip(model.named_parameters(), restored_model.named_parameters(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("scheduler_type", TYPES)
def test_the_optimizers_hyperparameters_are_left_as_they_were_when_a_scheduler_is_decoded_over_it(
        scheduler_type, make_mlp, train_steps):
    model, scheduler = training(make_mlp, scheduler_type)
    step(model, scheduler, 3, train_steps, seed=1)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in scheduler.optimizer.param_groups]
    data = CODEC.encode(scheduler, CodecContext(model=model, optimizer=scheduler.optimizer))
    CODEC.decode(data, CodecContext(model=model, optimizer=scheduler.optimizer))
    assert [{k: v for k, v in g.items() if k != "params"} for g in scheduler.optimizer.param_groups] == groups


def test_the_bytes_are_safetensors_with_json_metadata_and_equal_schedulers_give_equal_bytes(make_mlp, train_steps):
    model, scheduler = training(make_mlp, "multistep")
    step(model, scheduler, 3, train_steps, seed=1)
    data = CODEC.encode(scheduler, CodecContext(model=model))
    assert data == CODEC.encode(scheduler, CodecContext(model=model))
    metadata = read_metadata(data)
    assert metadata["format"] == "cardloop.scheduler/1" and metadata["type"] == "MultiStepLR"
    assert metadata["recipe"] == {"type": "MultiStepLR", "kwargs": {"milestones": [2, 5, 9], "gamma": 0.3}}
    assert metadata["optimizer"] == {"type": "SGD", "groups": [["0.weight", "0.bias", "2.weight", "2.bias",
                                                                "4.weight", "4.bias"]]}
    assert metadata["state"]["milestones"] == {"__counter__": [[2, 1], [5, 1], [9, 1]]}
    json.dumps(metadata)  # nothing but JSON beside the tensors: no pickle


def test_decoding_over_another_optimizer_is_a_store_error_naming_both(make_mlp):
    model, scheduler = training(make_mlp, "step")
    data = CODEC.encode(scheduler, CodecContext(model=model))
    other = torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters()}])
    with pytest.raises(StoreError, match=r"bound to a SGD with 1 parameter group\(s\) of \[6\] parameters "
                                         r"\(parameters '0.weight', '0.bias', '2.weight', '2.bias', \.\.\.\), not to "
                                         r"the given Adam"):
        CODEC.decode(data, CodecContext(model=model, optimizer=other))


def test_decoding_without_the_optimizer_or_the_model_is_a_store_error(make_mlp):
    model, scheduler = training(make_mlp, "step")
    data = CODEC.encode(scheduler, CodecContext(model=model))
    with pytest.raises(StoreError, match=r"without the optimizer it is bound to \(CodecContext.optimizer\)"):
        CODEC.decode(data, CodecContext(model=model))
    with pytest.raises(StoreError, match=r"without the model it is bound to \(CodecContext.model\)"):
        CODEC.decode(data, CodecContext(optimizer=scheduler.optimizer))


def test_a_scheduler_built_without_a_recipe_cannot_be_stored(make_mlp):
    model = make_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(StoreError, match="a LambdaLR not built by cardloop.schedulers.build_scheduler has no recipe"):
        CODEC.encode(torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9 ** step), CodecContext(model=model))


def test_a_recipe_may_not_name_a_scheduler_that_takes_a_function(make_mlp):
    optimizer = torch.optim.SGD(make_mlp().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler type 'LambdaLR' is not one"):
        build_scheduler(optimizer, {"type": "LambdaLR", "kwargs": {}})


@pytest.mark.parametrize("scheduler_type", ["warmup_cosine", "reduce_on_plateau"])
def test_the_summary_read_from_the_bytes_is_the_live_schedulers(scheduler_type, make_mlp, train_steps):
    model, scheduler = training(make_mlp, scheduler_type)
    step(model, scheduler, 2, train_steps, seed=1)
    data = CODEC.encode(scheduler, CodecContext(model=model))
    summary = CODEC.summarize(scheduler)
    assert CODEC.summarize_stored(data, CodecContext()) == summary
    assert summary["lr"] == scheduler.get_last_lr() and summary["last_epoch"] == scheduler.last_epoch
