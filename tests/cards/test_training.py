"""The guide's training cards inside pipelines, against PyTorch's own behaviour."""

import pytest
import torch

import cardloop
from cardloop import Pipeline
from cardloop.errors import CardFailed
from cardloop.examples import basic_training_loop
from tests.oracle import assert_same_weights, build_mlp, hand_written_loop

SHAPE = dict(batches=4, batch_size=16, layers=[8])


def test_without_zero_grad_gradients_accumulate_as_in_pytorch(regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, zero_grad=False,
                                   learning_rate=0.01, **SHAPE)
    result = cardloop.run(pipeline, store=store)
    assert_same_weights(result.outputs["step3"]["model"],
                        hand_written_loop(regression_csv, zero_grad=False, learning_rate=0.01, **SHAPE))
    with_zero = cardloop.run(basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False,
                                                 learning_rate=0.01, **SHAPE), store=store)
    assert not torch.equal(with_zero.outputs["step3"]["model"][0].weight, result.outputs["step3"]["model"][0].weight)


def test_zero_grad_clears_gradients_to_none(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, **{**SHAPE, "batches": 1})
    p.add("training_zero_grad", "clear", optimizer=p.card("step0")["optimizer"])
    result = cardloop.run(p, store=store)
    assert all(param.grad is None for param in result.outputs["step0"]["model"].parameters())


def two_backward_pipeline(csv, retain_graph: bool) -> Pipeline:
    p = Pipeline(name="twice")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8])
    batch = p.add("training_prepare_batch", "batch", train_dataset=data["dataset"], batch_size=16)
    fwd = p.add("training_forward", "fwd", model=model["model"], batch_data=batch["batch_data"])
    loss = p.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"])
    p.add("training_backward", "back_a", loss=loss["loss"], model=fwd["model"], retain_graph=retain_graph)
    p.add("training_backward", "back_b", loss=loss["loss"], model=fwd["model"])
    return p


def test_retain_graph_lets_a_second_backward_accumulate(regression_csv, store):
    result = cardloop.run(two_backward_pipeline(regression_csv, retain_graph=True), store=store)
    import pandas as pd

    frame = pd.read_csv(regression_csv)
    X = torch.tensor(frame[["a", "b", "c", "d"]].to_numpy("float32")[:16].copy(order="C"))
    y = torch.tensor(frame[["target"]].to_numpy("float32")[:16].copy(order="C"))
    model = build_mlp(4, [8])
    loss = torch.nn.functional.mse_loss(model(X), y)
    loss.backward(retain_graph=True)
    loss.backward()
    for mine, theirs in zip(result.outputs["back_b"]["model"].parameters(), model.parameters()):
        assert torch.equal(mine.grad, theirs.grad)


def test_backward_twice_without_retain_graph_names_the_cards(regression_csv, store):
    with pytest.raises(CardFailed) as caught:
        cardloop.run(two_backward_pipeline(regression_csv, retain_graph=False), store=store)
    message = str(caught.value)
    assert "card 'back_b' (training_backward) failed" in message
    assert "already back-propagated by 'back_a'" in message and "retain_graph: true on 'back_a'" in message
    assert caught.value.result.status == "failed"


def test_a_batch_index_past_the_end_names_the_card_and_the_number_of_batches(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=1, batch_size=16)
    p.card("batch0").config["batch_index"] = 7
    with pytest.raises(CardFailed, match=r"card 'batch0' .*100 rows in batches of 16 make 7 batches"):
        cardloop.run(p, store=store)


def test_the_last_batch_may_be_short(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=7, batch_size=16)
    result = cardloop.run(p, store=store, keep_outputs=True)
    assert result.outputs["batch6"]["batch_info"]["size"] == 4
    assert result.outputs["batch6"]["batch_data"].X.shape == (4, 4)
    assert result.outputs["batch6"]["batch_data"].y.shape == (4, 1)
    assert result.outputs["batch6"]["batch_info"]["rows"] == [96, 100]


def test_step_info_reports_clipping_learning_rate_and_step(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=2, batch_size=16,
                            gradient_clip=1e-3, learning_rate=0.05)
    result = cardloop.run(p, store=store)
    info = result.outputs["step1"]["step_info"]
    assert info["clipped"] is True and info["grad_norm"] > 1e-3
    assert info["step"] == 2 and info["learning_rate"] == 0.05
    assert "grad_norm" not in result.outputs["back1"]["gradients_computed"]


def test_a_model_and_optimizer_that_do_not_belong_together_are_refused(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=1, batch_size=16)
    other = p.add("model_define", "other", input_dim=4, layers=[8], seed=1)
    p.add("training_optimizer_step", "wrong", optimizer=p.card("step0")["optimizer"], model=other["model"])
    with pytest.raises(CardFailed, match="card 'wrong'.*not bound to this model"):
        cardloop.run(p, store=store)
