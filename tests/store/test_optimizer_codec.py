"""The optimizer codec: no pickle, parameters matched by name and shape, training continues bit-identically."""

from __future__ import annotations

import pytest
import torch

from cardloop.errors import StoreError
from cardloop.models import build_model
from cardloop.store.codecs import CodecContext, codec_for_kind

CODEC = codec_for_kind("optimizer")
MODELS = codec_for_kind("model")

OPTIMIZERS = {
    "adam": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.95)),
    "adam_amsgrad": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, amsgrad=True, weight_decay=0.1),
    "sgd_momentum": lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda m: torch.optim.RMSprop(m.parameters(), lr=0.01, momentum=0.5, centered=True),
    "adamw_named": lambda m: torch.optim.AdamW(m.named_parameters(), lr=0.01),
    "adagrad": lambda m: torch.optim.Adagrad(m.parameters(), lr=0.1),
    "adam_groups": lambda m: torch.optim.Adam([{"params": m[0].parameters(), "lr": 0.1},
                                               {"params": m[2].parameters()}], lr=0.01),
}


def round_trip(model, optimizer):
    """The model and its optimizer as another process would load them: model first, then the optimizer."""
    restored_model = MODELS.decode(MODELS.encode(model, CodecContext()), CodecContext())
    data = CODEC.encode(optimizer, CodecContext(model=model))
    return restored_model, CODEC.decode(data, CodecContext(model=restored_model))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_training_continues_bit_identically_after_a_round_trip(name, make_mlp, train_steps):
    assert torch.get_num_threads() == 1  # pinned by tests/conftest.py: results depend on the thread count
    model = make_mlp()
    optimizer = OPTIMIZERS[name](model)
    train_steps(model, optimizer, 3)
    restored_model, restored_optimizer = round_trip(model, optimizer)
    train_steps(model, optimizer, 4, seed=2)
    train_steps(restored_model, restored_optimizer, 4, seed=2)
    for (key, p), (_, q) in zip(model.named_parameters(), restored_model.named_parameters(), strict=True):
        assert torch.equal(p, q), key


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_type_hyperparameters_and_state_come_back_exactly(name, make_mlp, train_steps):
    model = make_mlp()
    optimizer = OPTIMIZERS[name](model)
    train_steps(model, optimizer, 2)
    _, restored = round_trip(model, optimizer)
    assert type(restored) is type(optimizer)
    assert restored.defaults == optimizer.defaults
    original, loaded = optimizer.state_dict(), restored.state_dict()
    assert loaded["param_groups"] == original["param_groups"]
    assert loaded["state"].keys() == original["state"].keys()
    for index, entry in original["state"].items():
        for key, value in entry.items():
            assert torch.equal(loaded["state"][index][key], value), (index, key)


def test_tuple_hyperparameters_come_back_as_tuples(make_mlp):
    model = make_mlp()
    _, restored = round_trip(model, torch.optim.Adam(model.parameters(), betas=(0.8, 0.9)))
    assert restored.param_groups[0]["betas"] == (0.8, 0.9)


def test_a_fresh_optimizer_without_state_round_trips(make_mlp):
    model = make_mlp()
    _, restored = round_trip(model, torch.optim.SGD(model.parameters(), lr=0.3))
    assert restored.param_groups[0]["lr"] == 0.3 and not restored.state


def test_lbfgs_state_with_lists_of_tensors_round_trips(make_mlp):
    model = make_mlp()
    optimizer = torch.optim.LBFGS(model.parameters(), history_size=3, max_iter=4)
    X, y = torch.randn(8, 4), torch.randn(8, 1)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    _, restored = round_trip(model, optimizer)
    original, loaded = next(iter(optimizer.state.values())), next(iter(restored.state.values()))
    assert loaded["n_iter"] == original["n_iter"]
    assert all(torch.equal(a, b) for a, b in zip(loaded["old_dirs"], original["old_dirs"], strict=True))


def test_loading_into_a_model_with_a_differently_shaped_parameter_names_it(make_mlp, train_steps):
    model = make_mlp(layers=(8, 8))
    optimizer = torch.optim.Adam(model.parameters())
    train_steps(model, optimizer, 1)
    data = CODEC.encode(optimizer, CodecContext(model=model))
    with pytest.raises(StoreError, match=r"parameter '2\.weight' has shape \[6, 8\] in the model but \[8, 8\]"):
        CODEC.decode(data, CodecContext(model=make_mlp(layers=(8, 6))))


def test_loading_into_a_model_without_a_stored_parameter_names_it(make_mlp):
    model = make_mlp(layers=(8, 8))
    data = CODEC.encode(torch.optim.SGD(model.parameters()), CodecContext(model=model))
    with_dropout = build_model({"name": "mlp", "config": {"input_dim": 4, "layers": [8, 8], "activation": "tanh",
                                                          "dropout": 0.1}})
    with pytest.raises(StoreError, match="parameter '2.weight', which the model does not have"):
        CODEC.decode(data, CodecContext(model=with_dropout))


def test_an_optimizer_needs_its_bound_model_to_be_stored_or_loaded(make_mlp):
    model = make_mlp()
    optimizer = torch.optim.SGD(model.parameters())
    with pytest.raises(StoreError, match="CodecContext.model"):
        CODEC.encode(optimizer, CodecContext())
    data = CODEC.encode(optimizer, CodecContext(model=model))
    with pytest.raises(StoreError, match="CodecContext.model"):
        CODEC.decode(data, CodecContext())


def test_an_optimizer_over_parameters_outside_the_model_is_refused(make_mlp):
    stray = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(StoreError, match=r"shape \[3\] that is not in the model"):
        CODEC.encode(torch.optim.SGD([stray]), CodecContext(model=make_mlp()))


def test_an_optimizer_type_outside_torch_optim_is_refused(make_mlp):
    class Custom(torch.optim.SGD):
        pass

    model = make_mlp()
    with pytest.raises(StoreError, match="'Custom' is not one of torch.optim's"):
        CODEC.encode(Custom(model.parameters(), lr=0.1), CodecContext(model=model))


def test_equal_optimizers_give_identical_bytes(make_mlp, train_steps):
    encoded = []
    for _ in range(2):
        model = make_mlp()
        optimizer = torch.optim.Adam(model.parameters())
        train_steps(model, optimizer, 2)
        encoded.append(CODEC.encode(optimizer, CodecContext(model=model)))
    assert encoded[0] == encoded[1]


def test_the_summary_has_the_type_and_each_groups_hyperparameters(make_mlp, train_steps):
    model = make_mlp()
    optimizer = OPTIMIZERS["adam_groups"](model)
    train_steps(model, optimizer, 1)
    summary = CODEC.summarize(optimizer)
    assert summary["type"] == "Adam"
    assert [g["lr"] for g in summary["groups"]] == [0.1, 0.01]
    assert summary["groups"][0]["betas"] == [0.9, 0.999] and summary["groups"][0]["parameters"] == 2
    assert summary["parameters_with_state"] == 4


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_summary_read_from_the_bytes_is_the_summary_of_the_decoded_optimizer(name, make_mlp, train_steps):
    model = make_mlp()
    optimizer = OPTIMIZERS[name](model)
    train_steps(model, optimizer, 2)
    data = CODEC.encode(optimizer, CodecContext(model=model))
    assert CODEC.summarize_stored(data, CodecContext()) == CODEC.summarize(optimizer)


def test_an_optimizer_that_only_shares_a_name_with_a_torch_optimizer_is_refused(make_mlp):
    class SGD(torch.optim.SGD):
        pass

    model = make_mlp()
    with pytest.raises(StoreError, match="is not torch.optim's SGD"):
        CODEC.encode(SGD(model.parameters(), lr=0.1), CodecContext(model=model))


def test_an_optimizer_keeps_the_card_that_made_it_and_trains_its_part_of_the_model_it_is_loaded_into(make_mlp):
    from cardloop.errors import CardError
    from cardloop.model_parts import TRAINER_CARD_ATTR, check_unclaimed, record_trainer

    model = make_mlp()
    optimizer = torch.optim.SGD(model[0].parameters(), lr=0.1)
    record_trainer(model, optimizer, "opt_body")
    restored_model, restored = round_trip(model, optimizer)
    assert getattr(restored, TRAINER_CARD_ATTR) == "opt_body"
    with pytest.raises(CardError, match="the optimizer card 'opt_body' already trains '0.weight'"):
        check_unclaimed(restored_model, {"0.weight": restored_model[0].weight}, "opt_head")
