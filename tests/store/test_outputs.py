"""A run's outputs read back from the store (store/outputs.py)."""

import cardloop
from cardloop.examples import basic_training_loop


def test_a_scalar_output_that_was_none_loads_as_none(regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), batches=1, batch_size=16)
    result = cardloop.run(pipeline, store=store, threads=1)
    assert cardloop.load_output(result.run_id, "evaluate", "accuracy", store=store) is None
    assert cardloop.load_output(result.run_id, "evaluate", "mse", store=store) == result.outputs["evaluate"]["mse"]
