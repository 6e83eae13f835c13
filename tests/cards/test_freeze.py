"""training_freeze: frozen parameters get no gradient and no update, as when frozen by hand in PyTorch, and stay
frozen through storage (cards/freeze.py)."""

import pandas as pd
import pytest
import torch

import cardloop
from cardloop import Pipeline
from cardloop.errors import CardFailed, PipelineInvalid
from cardloop.examples import add_training_step, loop_blocks
from cardloop.pipeline.model import Card
from tests.oracle import assert_same_weights, build_mlp
from tests.parts_oracle import frame_tensors, train_by_hand

BATCHES, BATCH_SIZE = 4, 16


def frozen_pipeline(csv, parameters=("0.*",), unfreeze_at: int | None = None, learning_rate: float = 0.01) -> Pipeline:
    """Model, freeze `parameters`, an Adam over every parameter, BATCHES training steps; with `unfreeze_at`, the
    parameters are unfrozen before that batch."""
    p = Pipeline(name="frozen")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8], seed=0)["model"]
    model = p.add("training_freeze", "freeze", model=model, parameters=list(parameters))["model"]
    optimizer = p.add("training_init_optimizer", "opt", model=model, learning_rate=learning_rate)["optimizer"]
    for i in range(BATCHES):
        if i == unfreeze_at:
            model = p.add("training_freeze", "unfreeze", model=model, parameters=list(parameters),
                          freeze=False)["model"]
        model, optimizer, _ = add_training_step(p, i, data["dataset"], model, optimizer, batch_size=BATCH_SIZE)
    return p


def frozen_by_hand(csv, unfreeze_at: int | None = None, learning_rate: float = 0.01) -> torch.nn.Module:
    model = build_mlp(4, [8])
    for parameter in model[0].parameters():
        parameter.requires_grad_(False)

    def unfreeze(step: int) -> None:
        if step == unfreeze_at:
            for parameter in model[0].parameters():
                parameter.requires_grad_(True)

    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    return train_by_hand(*frame_tensors(pd.read_csv(csv)), model, [optimizer], batch_size=BATCH_SIZE,
                         batches=BATCHES, before_batch=unfreeze)


@pytest.mark.parametrize("executor", ["local", "process"])
def test_frozen_parameters_get_no_gradient_and_no_update_as_when_frozen_by_hand(regression_csv, store, executor):
    result = cardloop.run(frozen_pipeline(regression_csv), store=store, executor=executor, threads=1)
    model = result.outputs[f"step{BATCHES - 1}"]["model"]
    assert_same_weights(model, frozen_by_hand(regression_csv))
    assert torch.equal(model[0].weight, build_mlp(4, [8])[0].weight) and model[0].weight.grad is None
    assert [name for name, p in model.named_parameters() if not p.requires_grad] == ["0.weight", "0.bias"]


def test_unfrozen_parameters_train_again_as_when_unfrozen_by_hand(regression_csv, store):
    result = cardloop.run(frozen_pipeline(regression_csv, unfreeze_at=2), store=store, threads=1)
    model = result.outputs[f"step{BATCHES - 1}"]["model"]
    assert_same_weights(model, frozen_by_hand(regression_csv, unfreeze_at=2))
    assert not torch.equal(model[0].weight, build_mlp(4, [8])[0].weight)


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_frozen_model_taken_from_the_store_stays_frozen(regression_csv, store, executor):
    cardloop.run(frozen_pipeline(regression_csv), store=store, executor=executor, persist="all")
    changed = cardloop.run(frozen_pipeline(regression_csv, learning_rate=0.02), store=store, executor=executor,
                           threads=1)
    assert "freeze" in changed.cached and "opt" in changed.executed
    assert_same_weights(changed.outputs[f"step{BATCHES - 1}"]["model"],
                        frozen_by_hand(regression_csv, learning_rate=0.02))


def test_freezing_clears_the_gradients_of_the_frozen_parameters(regression_csv, store):
    p = frozen_pipeline(regression_csv, parameters=("2.*",))
    p.add("training_freeze", "late", model=p.card(f"step{BATCHES - 1}")["model"], parameters=["0.*"])
    result = cardloop.run(p, store=store, persist="all")
    stepped = cardloop.load_output(result.run_id, f"step{BATCHES - 1}", "model", store=store)
    assert stepped[0].weight.grad is not None  # left by the last backward
    model = result.outputs["late"]["model"]
    assert model[0].weight.grad is None and model[0].bias.grad is None


def test_a_pattern_that_matches_no_parameter_lists_the_model_s_parameters(regression_csv, store):
    with pytest.raises(CardFailed, match=r"card 'freeze' \(training_freeze\) failed: config field 'parameters': the "
                                         r"pattern 'head\.\*' matches no parameter; the model's parameters are "
                                         r"'0.weight', '0.bias', '2.weight', '2.bias'"):
        cardloop.run(frozen_pipeline(regression_csv, parameters=("head.*",)), store=store)


def test_backward_on_a_model_with_every_parameter_frozen_says_so(regression_csv, store):
    with pytest.raises(CardFailed, match=r"card 'back0' \(training_backward\) failed: every parameter of the model is "
                                         r"frozen, so the loss from 'loss0.loss' has no autograd graph"):
        cardloop.run(frozen_pipeline(regression_csv, parameters=("*",)), store=store)


def test_the_parameters_to_freeze_must_be_given(regression_csv, store):
    p = frozen_pipeline(regression_csv)
    del p.card("freeze").config["parameters"]
    with pytest.raises(PipelineInvalid, match=r"card 'freeze' \(training_freeze\): config field 'parameters' is "
                                              r"required"):
        cardloop.run(p, store=store)


def unfreezing_blocks(csv, epochs: int) -> Pipeline:
    """The first layer frozen, then `epochs` epochs of loop blocks that unfreeze it in the second epoch."""
    p = loop_blocks(path=str(csv), input_dim=4, layers=(8,), prepare=False, patience=None, epochs=epochs,
                    batch_size=BATCH_SIZE, learning_rate=0.01)
    p.cards.insert(2, Card(id="freeze", type="training_freeze", inputs={"model": "model.model"},
                           config={"parameters": ["0.*"]}))
    p.card("opt").inputs["model"] = p.card("epochs").inputs["model"] = "freeze.model"
    body = p.card("epochs").body
    body.cards.insert(1, Card(id="unfreeze", type="training_freeze", inputs={"model": "epochs.model"},
                              config={"parameters": ["0.*"], "freeze": False}, when={"every": 2, "of": "epochs"}))
    next(card for card in body.cards if card.id == "batches").inputs["model"] = "unfreeze.model"
    return p


def test_a_block_resumed_after_it_unfroze_parameters_trains_as_one_never_interrupted(regression_csv, tmp_path):
    store = tmp_path / "store"
    cardloop.run(unfreezing_blocks(regression_csv, epochs=2), store=store)  # unfreezes in its last epoch
    resumed = cardloop.run(unfreezing_blocks(regression_csv, epochs=3), store=store, threads=1)
    assert len(resumed.outputs["epochs"]["loss"]) == 3
    whole = cardloop.run(unfreezing_blocks(regression_csv, epochs=3), store=tmp_path / "other", threads=1)
    assert_same_weights(resumed.outputs["epochs"]["model"], whole.outputs["epochs"]["model"])
