"""Initialize Optimizer's settings, parameter patterns and groups, and optimizers on parts of one model, against
PyTorch's own optimizers (cards/optimizers.py)."""

import pandas as pd
import pytest
import torch

import cardloop
from cardloop import Pipeline
from cardloop.errors import CardFailed, PipelineInvalid
from cardloop.example_optimizers import two_optimizers
from cardloop.examples import basic_training_loop, loop_blocks
from tests.oracle import assert_same_weights, build_mlp
from tests.parts_oracle import frame_tensors, train_by_hand

SHAPE = {"input_dim": 4, "layers": (8,), "prepare": False}
BATCHES, BATCH_SIZE, EPOCHS = 4, 16, 2
NAMES = "'0.weight', '0.bias', '2.weight', '2.bias'"

# (card config, the same optimizer made by hand): every setting differs from its default
SETTINGS = {
    "sgd": ({"optimizer_type": "sgd", "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
            lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd nesterov": ({"optimizer_type": "sgd", "momentum": 0.8, "nesterov": True},
                     lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.8, nesterov=True)),
    "adam": ({"optimizer_type": "adam", "betas": [0.8, 0.99], "eps": 1e-6, "amsgrad": True},
             lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, amsgrad=True)),
    "adamw": ({"optimizer_type": "adamw", "betas": [0.85, 0.995], "eps": 1e-7, "amsgrad": True, "weight_decay": 0.05},
              lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.85, 0.995), eps=1e-7, amsgrad=True,
                                           weight_decay=0.05)),
    "adamw card defaults": ({"optimizer_type": "adamw"},  # weight_decay 0.0, not torch's 0.01
                            lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.0)),
    "rmsprop": ({"optimizer_type": "rmsprop", "alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "centered": True},
                lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True)),
}


def unrolled(csv, config: dict) -> Pipeline:
    p = basic_training_loop(path=str(csv), batches=BATCHES, batch_size=BATCH_SIZE, learning_rate=0.01, **SHAPE)
    p.card("opt").config.update(config)
    return p


def by_hand(csv, make_optimizers, **loop) -> torch.nn.Module:
    model = build_mlp(4, [8])
    return train_by_hand(*frame_tensors(pd.read_csv(csv)), model, make_optimizers(model), batch_size=BATCH_SIZE,
                         **loop)


@pytest.mark.parametrize("name", SETTINGS)
def test_each_optimizer_type_with_its_own_settings_trains_as_torch_s_in_an_unrolled_pipeline(regression_csv, store,
                                                                                              name):
    config, make = SETTINGS[name]
    result = cardloop.run(unrolled(regression_csv, config), store=store)
    expected = by_hand(regression_csv, lambda m: [make(m.parameters())], batches=BATCHES)
    assert_same_weights(result.outputs[f"step{BATCHES - 1}"]["model"], expected)


@pytest.mark.parametrize("name", SETTINGS)
def test_each_optimizer_type_with_its_own_settings_trains_as_torch_s_in_loop_blocks(regression_csv, store, name):
    config, make = SETTINGS[name]
    p = loop_blocks(path=str(regression_csv), epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.01, seed=3,
                    patience=None, **SHAPE)
    p.card("opt").config.update(config)
    result = cardloop.run(p, store=store)
    expected = by_hand(regression_csv, lambda m: [make(m.parameters())], epochs=EPOCHS, shuffle=True, seed=3)
    assert_same_weights(result.outputs["epochs"]["model"], expected)


def test_parameter_groups_train_with_their_own_learning_rates_and_settings(regression_csv, store):
    config = {"optimizer_type": "sgd", "momentum": 0.9,
              "param_groups": [{"parameters": ["2.*"], "learning_rate": 0.1, "momentum": 0.5}]}
    result = cardloop.run(unrolled(regression_csv, config), store=store)
    expected = by_hand(regression_csv, lambda m: [torch.optim.SGD(
        [{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": 0.1, "momentum": 0.5}],
        lr=0.01, momentum=0.9)], batches=BATCHES)
    assert_same_weights(result.outputs[f"step{BATCHES - 1}"]["model"], expected)
    groups = result.outputs[f"step{BATCHES - 1}"]["optimizer"].param_groups
    assert [(g["lr"], g["momentum"], len(g["params"])) for g in groups] == [(0.01, 0.9, 2), (0.1, 0.5, 2)]


def test_an_optimizer_on_some_parameters_trains_only_those(regression_csv, store):
    result = cardloop.run(unrolled(regression_csv, {"parameters": ["2.*"]}), store=store)
    model = result.outputs[f"step{BATCHES - 1}"]["model"]
    expected = by_hand(regression_csv, lambda m: [torch.optim.Adam(m[2].parameters(), lr=0.01)], batches=BATCHES)
    assert_same_weights(model, expected)
    assert torch.equal(model[0].weight, build_mlp(4, [8])[0].weight)  # the first layer did not move


# --- two optimizers on two parts of one model


BODY = {"optimizer_type": "sgd", "learning_rate": 0.05, "momentum": 0.9, "parameters": ["0.*"]}
HEAD = {"optimizer_type": "adam", "learning_rate": 0.01, "parameters": ["2.*"]}


def two_parts_unrolled(csv, body: dict = BODY, head: dict = HEAD) -> Pipeline:
    """Model, one optimizer per part, then for every batch: both Zero Gradients, forward, loss, backward, both
    Optimizer Steps."""
    p = Pipeline(name="two-parts")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)["model"]
    optimizers = {"body": p.add("training_init_optimizer", "opt_body", model=model, **body)["optimizer"],
                  "head": p.add("training_init_optimizer", "opt_head", model=model, **head)["optimizer"]}
    for i in range(BATCHES):
        batch = p.add("training_prepare_batch", f"batch{i}", train_dataset=data["dataset"], batch_index=i,
                      batch_size=BATCH_SIZE)["batch_data"]
        for part in optimizers:
            optimizers[part] = p.add("training_zero_grad", f"zero_{part}{i}", optimizer=optimizers[part])["optimizer"]
        fwd = p.add("training_forward", f"fwd{i}", model=model, batch_data=batch)
        loss = p.add("training_loss", f"loss{i}", predictions=fwd["predictions"], batch_data=batch)
        model = p.add("training_backward", f"back{i}", loss=loss["loss"], model=fwd["model"])["model"]
        for part in optimizers:
            step = p.add("training_optimizer_step", f"step_{part}{i}", optimizer=optimizers[part], model=model)
            model, optimizers[part] = step["model"], step["optimizer"]
    return p


def two_parts_blocks(csv, body: dict = BODY, head: dict = HEAD) -> Pipeline:
    return two_optimizers(path=str(csv), epochs=EPOCHS, batch_size=BATCH_SIZE, input_dim=4, layers=(8,), body=body,
                          head=head, prepare=False, seed=3)


def two_parts_by_hand(csv, head_lr: float = 0.01, **loop) -> torch.nn.Module:
    return by_hand(csv, lambda m: [torch.optim.SGD(m[0].parameters(), lr=0.05, momentum=0.9),
                                   torch.optim.Adam(m[2].parameters(), lr=head_lr)], **loop)


@pytest.mark.parametrize("executor", ["local", "process"])
def test_two_optimizers_on_two_parts_train_as_the_hand_written_loop_unrolled(regression_csv, store, executor):
    result = cardloop.run(two_parts_unrolled(regression_csv), store=store, executor=executor, threads=1)
    assert_same_weights(result.outputs[f"step_head{BATCHES - 1}"]["model"],
                        two_parts_by_hand(regression_csv, batches=BATCHES))


@pytest.mark.parametrize("executor", ["local", "process"])
def test_two_optimizers_on_two_parts_train_as_the_hand_written_loop_in_loop_blocks(regression_csv, store, executor):
    result = cardloop.run(two_parts_blocks(regression_csv), store=store, executor=executor, threads=1)
    assert_same_weights(result.outputs["epochs"]["model"],
                        two_parts_by_hand(regression_csv, epochs=EPOCHS, shuffle=True, seed=3))


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_cached_re_run_and_one_with_one_optimizer_changed_train_as_the_hand_written_loop(regression_csv, store,
                                                                                           executor):
    first = cardloop.run(two_parts_blocks(regression_csv), store=store, executor=executor, threads=1, persist="all")
    again = cardloop.run(two_parts_blocks(regression_csv), store=store, executor=executor, threads=1)
    assert again.executed == [] and "opt_head" in again.cached
    assert_same_weights(again.outputs["epochs"]["model"], first.outputs["epochs"]["model"])
    changed = cardloop.run(two_parts_blocks(regression_csv, head={**HEAD, "learning_rate": 0.02}), store=store,
                           executor=executor, threads=1)
    assert "opt_body" in changed.cached and "opt_head" in changed.executed  # the body's optimizer from the store
    assert_same_weights(changed.outputs["epochs"]["model"],
                        two_parts_by_hand(regression_csv, head_lr=0.02, epochs=EPOCHS, shuffle=True, seed=3))


# --- mistakes


def failure(csv, store, config: dict) -> str:
    with pytest.raises(CardFailed) as caught:
        cardloop.run(unrolled(csv, config), store=store)
    return str(caught.value)


@pytest.mark.parametrize(("config", "message"), [
    ({"optimizer_type": "sgd", "betas": [0.5, 0.9]},
     ("config field 'betas' is [0.5, 0.9], but optimizer_type 'sgd' takes no betas; its own fields are momentum, "
      "dampening, nesterov")),
    ({"optimizer_type": "adam", "momentum": 0.9},
     "config field 'momentum' is 0.9, but optimizer_type 'adam' takes no momentum"),
    ({"optimizer_type": "adamw", "param_groups": [{"parameters": ["2.*"], "alpha": 0.5}]},
     "config field 'param_groups.0.alpha' is 0.5, but optimizer_type 'adamw' takes no alpha"),
])
def test_a_setting_the_optimizer_type_does_not_take_is_named(regression_csv, store, config, message):
    assert message in failure(regression_csv, store, config)


@pytest.mark.parametrize("config", [{"momentum": 0.0}, {"momentum": 0.9, "dampening": 0.1}])
def test_nesterov_without_momentum_or_with_dampening_is_named(regression_csv, store, config):
    message = failure(regression_csv, store, {"optimizer_type": "sgd", "nesterov": True, **config})
    assert "card 'opt' (training_init_optimizer)" in message
    assert "config field 'nesterov' is true, which needs momentum > 0 and dampening 0" in message


def test_nesterov_in_a_group_without_momentum_is_named(regression_csv, store):
    config = {"optimizer_type": "sgd", "momentum": 0.9, "param_groups": [{"parameters": ["0.*"], "momentum": 0.0,
                                                                          "nesterov": True}]}
    assert "config field 'param_groups.0.nesterov' is true" in failure(regression_csv, store, config)


def test_a_pattern_that_matches_no_parameter_lists_the_model_s_parameters(regression_csv, store):
    message = failure(regression_csv, store, {"parameters": ["head.*"]})
    assert f"config field 'parameters': the pattern 'head.*' matches no parameter; the model's parameters are " \
           f"{NAMES}" in message


def test_a_group_pattern_that_matches_no_trained_parameter_lists_the_trained_ones(regression_csv, store):
    message = failure(regression_csv, store, {"parameters": ["0.*"], "param_groups": [{"parameters": ["2.*"]}]})
    assert "config field 'param_groups.0.parameters': the pattern '2.*' matches no parameter; the trained " \
           "parameters are '0.weight', '0.bias'" in message


def test_a_parameter_in_two_groups_is_named(regression_csv, store):
    config = {"param_groups": [{"parameters": ["2.*"]}, {"parameters": ["*.bias"], "learning_rate": 0.1}]}
    assert "config field 'param_groups.1.parameters': parameter '2.bias' is already in param_groups.0" \
        in failure(regression_csv, store, config)


def test_a_setting_out_of_torch_s_range_is_refused_before_the_run(regression_csv, store):
    with pytest.raises(PipelineInvalid, match=r"card 'opt' \(training_init_optimizer\): config field 'betas.1' is 1.0"):
        cardloop.run(unrolled(regression_csv, {"betas": [0.9, 1.0]}), store=store)


OVERLAP = "the optimizer card 'opt_body' already trains '0.weight', '0.bias' of this model, so 'opt_head' cannot " \
          "train them too"


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_parameter_claimed_by_two_optimizers_of_one_model_names_both_cards(regression_csv, store, executor):
    with pytest.raises(CardFailed) as caught:
        cardloop.run(two_parts_unrolled(regression_csv, head={**HEAD, "parameters": ["*"]}), store=store,
                     executor=executor)
    assert "card 'opt_head' (training_init_optimizer)" in str(caught.value) and OVERLAP in str(caught.value)


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_parameter_claimed_by_an_optimizer_from_the_store_names_both_cards(regression_csv, store, executor):
    cardloop.run(two_parts_blocks(regression_csv), store=store, executor=executor, persist="all")
    overlapping = two_parts_blocks(regression_csv, head={**HEAD, "parameters": ["*"]})
    with pytest.raises(CardFailed) as caught:
        cardloop.run(overlapping, store=store, executor=executor)
    assert OVERLAP in str(caught.value)
    assert "opt_body" in caught.value.result.cached and "opt_body" not in caught.value.result.executed
