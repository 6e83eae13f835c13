"""The oracle on Ray: the 18 combinations of optimizer, loss and clipping, unrolled and as loop blocks (shuffled),
train on the Ray executor bit for bit like the hand-written PyTorch loop (tests/engine/test_oracle.py)."""

import pytest

import cardloop
from cardloop.engine import ray_executor
from cardloop.examples import loop_blocks
from tests.engine.test_oracle import COMBINATIONS, EPOCHS, SHAPE, card_pipeline
from tests.oracle import assert_same_weights, hand_written_loop


@pytest.fixture(scope="module", autouse=True)
def _one_warm_actor(ray_cluster):
    """The module's runs share one warm state actor (a store per test: one actor per store), left behind by none."""
    ray_executor.stop_workers()
    yield
    ray_executor.stop_workers()


@pytest.fixture
def store(tmp_path_factory):
    """One store for the module's runs, so that they share a warm actor; each run's pipeline is its own."""
    return tmp_path_factory.getbasetemp() / "ray_oracle_store"


def options_of(optimizer_type, loss_type, gradient_clip):
    return dict(optimizer_type=optimizer_type, loss_type=loss_type, gradient_clip=gradient_clip, learning_rate=0.01,
                weight_decay=0.001)


@pytest.mark.parametrize("optimizer_type, loss_type, gradient_clip", COMBINATIONS)
def test_the_unrolled_loop_on_ray_is_bit_identical_to_the_hand_written_loop(regression_csv, store, optimizer_type,
                                                                           loss_type, gradient_clip):
    options = options_of(optimizer_type, loss_type, gradient_clip)
    result = cardloop.run(card_pipeline(regression_csv, **options), store=store, threads=1, executor="ray")
    assert result.status == "succeeded"
    assert_same_weights(result.outputs["step6"]["model"], hand_written_loop(regression_csv, **SHAPE, **options))


@pytest.mark.parametrize("optimizer_type, loss_type, gradient_clip", COMBINATIONS)
def test_shuffled_loop_blocks_on_ray_are_bit_identical_to_the_hand_written_loop(regression_csv, store, optimizer_type,
                                                                               loss_type, gradient_clip):
    options = options_of(optimizer_type, loss_type, gradient_clip)
    blocks = loop_blocks(path=str(regression_csv), input_dim=4, layers=SHAPE["layers"], prepare=False,
                         epochs=EPOCHS, batch_size=SHAPE["batch_size"], shuffle=True, seed=3, **options)
    result = cardloop.run(blocks, store=store, threads=1, executor="ray")
    assert result.status == "succeeded"
    assert_same_weights(result.outputs["epochs"]["model"],
                        hand_written_loop(regression_csv, **SHAPE, epochs=EPOCHS, shuffle=True, seed=3, **options))
