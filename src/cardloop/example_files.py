"""The example pipelines of `examples/`, each built from the Python API with its settings, in one place: for
`examples/make_examples.py`, which writes the files, and for the editor's examples menu, which serves the same
pipelines (the server has no `examples/` folder when cardloop is installed from a wheel)."""

from __future__ import annotations

from typing import Callable, NamedTuple

from cardloop.pipeline.model import Pipeline

TRAIN_ROWS = 354  # the diabetes rows left for training by the 20 % test split
BATCH_SIZE = 8
BATCHES = -(-TRAIN_ROWS // BATCH_SIZE)  # 45
LOOP_EPOCHS = 3
BLOCK_EPOCHS = 10


class Example(NamedTuple):
    """One example file: how to build its pipeline, what `make_examples.py` says of it, and whether it needs a
    card file of `examples/cards` (then the editor, which loads none, does not offer it)."""

    build: Callable[[], Pipeline]
    says: str
    needs_card_files: bool = False


def _unrolled() -> Pipeline:
    from cardloop.examples import basic_training_loop

    return basic_training_loop(batches=BATCHES, batch_size=BATCH_SIZE, learning_rate=0.01,
                               name="unrolled-training-loop")


def _custom_l1() -> Pipeline:
    from cardloop.examples import basic_training_loop

    p = basic_training_loop(batches=BATCHES, batch_size=BATCH_SIZE, learning_rate=0.01, l1_weight=1e-4,
                            name="custom-l1")
    p.description = "The Basic Training Loop with an L1 penalty added between Calculate Loss and Backward Pass."
    return p


def _training_loop() -> Pipeline:
    from cardloop.examples import training_loop

    return training_loop(epochs=LOOP_EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.01)


def _blocks() -> Pipeline:
    from cardloop.examples import loop_blocks

    return loop_blocks(epochs=BLOCK_EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.01)


def _accumulation(way: str) -> Callable[[], Pipeline]:
    def build() -> Pipeline:
        from cardloop.example_accumulation import accumulation_blocks, accumulation_loop

        builder = accumulation_blocks if way == "blocks" else accumulation_loop
        return builder(accumulate=4, epochs=LOOP_EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.01, shuffle=True)

    return build


def _losses(which: str) -> Callable[[], Pipeline]:
    def build() -> Pipeline:
        from cardloop import example_losses

        return getattr(example_losses, which)(epochs=5, batch_size=BATCH_SIZE, learning_rate=0.01)

    return build


def _two_optimizers() -> Pipeline:
    from cardloop.example_optimizers import two_optimizers

    return two_optimizers(epochs=BLOCK_EPOCHS, batch_size=BATCH_SIZE)


def _warmup_cosine() -> Pipeline:
    from cardloop.example_schedulers import warmup_cosine

    return warmup_cosine(warmup_steps=BATCHES, T_max=BATCHES * (BLOCK_EPOCHS - 1), epochs=BLOCK_EPOCHS,
                         batch_size=BATCH_SIZE, learning_rate=0.01)


def _classification() -> Pipeline:
    from cardloop.example_classification import classification

    return classification()


#: file name in examples/ -> its example, in the order the README lists them
EXAMPLES: dict[str, Example] = {
    "basic_training_loop.yaml": Example(_blocks, f"up to {BLOCK_EPOCHS} epochs of {BATCHES} batches as loop blocks"),
    "unrolled_training_loop.yaml": Example(_unrolled, f"six cards for each of {BATCHES} batches"),
    "training_loop.yaml": Example(_training_loop, f"{LOOP_EPOCHS} epochs of {BATCHES} batches in one card"),
    "custom_l1.yaml": Example(_custom_l1, "the unrolled loop with an L1 card of examples/cards", True),
    "warmup_cosine.yaml": Example(_warmup_cosine, f"warmup + cosine over {BLOCK_EPOCHS * BATCHES} steps"),
    "gradient_accumulation.yaml": Example(_accumulation("blocks"), "a step every 4 batches and at each epoch's end"),
    "gradient_accumulation_loop.yaml": Example(_accumulation("loop"), "the Training Loop card with accumulate: 4"),
    "mse_l1_regularization.yaml": Example(_losses("mse_l1_regularization"), "MSE + L1 with built-in cards"),
    "skip_nonfinite_step.yaml": Example(_losses("skip_nonfinite_step"), "no step on a loss that is not finite"),
    "two_optimizers.yaml": Example(_two_optimizers, "SGD and Adam on two parts of one model"),
    "classification.yaml": Example(_classification, "the digits: a CNN, cross-entropy, AdamW, warmup + cosine"),
}


def editor_examples() -> dict[str, Pipeline]:
    """The examples the editor offers, by pipeline name (those that need no card file)."""
    found = {}
    for example in EXAMPLES.values():
        if not example.needs_card_files:
            pipeline = example.build()
            found[pipeline.name] = pipeline
    return found
