"""The oracle: the Basic Training Loop as cards (six per batch, or in one training_loop card) trains exactly like
the hand-written PyTorch loop."""

import itertools

import pytest
import torch

import cardloop
from cardloop.examples import basic_training_loop, loop_blocks, training_loop
from tests.oracle import assert_same_weights, hand_written_loop

SHAPE = dict(batches=7, batch_size=16, layers=[16, 16])
COMBINATIONS = list(itertools.product(["adam", "sgd", "rmsprop"], ["mse", "mae", "huber"], [0.0, 0.5]))
#: the guide's six cards per batch, and the same steps in one training_loop card: (builder, last card)
SHAPES = {"unrolled": (basic_training_loop, "step6"), "loop card": (training_loop, "loop")}


def card_pipeline(csv_path, shape: str = "unrolled", **options):
    build, _ = SHAPES[shape]
    return build(path=str(csv_path), input_dim=4, prepare=False, **{**SHAPE, **options})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("optimizer_type, loss_type, gradient_clip", COMBINATIONS)
def test_final_weights_are_bit_identical_to_the_hand_written_loop(regression_csv, store, optimizer_type,
                                                                 loss_type, gradient_clip, shape):
    options = dict(optimizer_type=optimizer_type, loss_type=loss_type, gradient_clip=gradient_clip,
                   learning_rate=0.01, weight_decay=0.001)
    result = cardloop.run(card_pipeline(regression_csv, shape, **options), store=store, threads=1)
    expected = hand_written_loop(regression_csv, **SHAPE, **options)
    assert result.status == "succeeded"
    assert_same_weights(result.outputs[SHAPES[shape][1]]["model"], expected)


@pytest.mark.parametrize("persist", ["checkpoint", "all"])
def test_the_stored_final_model_reloads_bit_identical(regression_csv, store, persist):
    options = dict(optimizer_type="adam", loss_type="huber", gradient_clip=0.5, learning_rate=0.01)
    result = cardloop.run(card_pipeline(regression_csv, **options), store=store, threads=1, persist=persist)
    stored = cardloop.load_output(result.run_id, "step6", "model", store=store)
    assert stored is not result.outputs["step6"]["model"]
    assert_same_weights(stored, hand_written_loop(regression_csv, **SHAPE, **options))
    for mine, theirs in zip(stored.parameters(), result.outputs["step6"]["model"].parameters()):
        assert torch.equal(mine.grad, theirs.grad)


EPOCHS = 3


@pytest.mark.parametrize("executor", ["local", "process"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["in order", "shuffled"])
@pytest.mark.parametrize("optimizer_type, loss_type, gradient_clip", COMBINATIONS)
def test_loop_blocks_train_bit_for_bit_like_the_hand_written_loop_and_the_unrolled_pipeline(
        regression_csv, store, optimizer_type, loss_type, gradient_clip, shuffle, executor):
    """Three epochs of a `batches` block over the Batch Iterator, in an `epochs` block."""
    options = dict(optimizer_type=optimizer_type, loss_type=loss_type, gradient_clip=gradient_clip,
                   learning_rate=0.01, weight_decay=0.001)
    blocks = loop_blocks(path=str(regression_csv), input_dim=4, layers=SHAPE["layers"], prepare=False,
                         epochs=EPOCHS, batch_size=SHAPE["batch_size"], shuffle=shuffle, seed=3, **options)
    result = cardloop.run(blocks, store=store, threads=1, executor=executor)
    expected = hand_written_loop(regression_csv, **SHAPE, epochs=EPOCHS, shuffle=shuffle, seed=3, **options)
    assert result.status == "succeeded"
    assert_same_weights(result.outputs["epochs"]["model"], expected)
    if executor == "local":  # the unrolled pipeline and the training_loop card, the same way (in one store)
        unrolled = cardloop.run(card_pipeline(regression_csv, epochs=EPOCHS, shuffle=shuffle, seed=3, **options),
                                store=store, threads=1)
        assert_same_weights(unrolled.outputs[f"step{EPOCHS * SHAPE['batches'] - 1}"]["model"], expected)
        assert [loss for epoch in result.outputs["epochs"]["loss"] for loss in epoch] == unrolled.metrics()
        looped = cardloop.run(card_pipeline(regression_csv, "loop card", epochs=EPOCHS, shuffle=shuffle, seed=3,
                                            **options), store=store, threads=1)
        assert_same_weights(looped.outputs["loop"]["model"], expected)
