"""Generate the example pipeline files from the Python API (cardloop.examples):

- basic_training_loop.yaml: the guide's Basic Training Loop as loop blocks: up to 10 epochs over the diabetes
  data (354 training rows after the 20 % test split, shuffled batches of 8), validation on the held-out rows
  after every epoch, early stopping, then evaluation;
- unrolled_training_loop.yaml: the guide's picture, unrolled: six cards for every batch of one epoch;
- custom_l1.yaml: the same loop with the guide's "Custom loss with regularization": an
  `l1_regularization` card (examples/cards/l1_regularization.py) between Calculate Loss and Backward Pass;
- training_loop.yaml: the same loop in one `training_loop` card (the guide's loop wrapper), for 3 epochs;
- warmup_cosine.yaml: the loop as blocks for 10 epochs with a warmup + cosine learning-rate schedule stepped after
  every batch (one epoch of linear warmup, then a cosine over the other nine), its rate recorded each step.

    python examples/make_examples.py           # writes them here, in examples/
    python examples/make_examples.py FOLDER    # writes them into FOLDER (the tests compare those with these)
"""

from __future__ import annotations

import sys
from pathlib import Path

from cardloop.examples import basic_training_loop, loop_blocks, training_loop

TRAIN_ROWS = 354
BATCH_SIZE = 8
LOOP_EPOCHS = 3
BLOCK_EPOCHS = 10
HERE = Path(__file__).parent

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    batches = -(-TRAIN_ROWS // BATCH_SIZE)
    basic = basic_training_loop(batches=batches, batch_size=BATCH_SIZE, learning_rate=0.01)
    l1 = basic_training_loop(batches=batches, batch_size=BATCH_SIZE, learning_rate=0.01, l1_weight=1e-4,
                             name="custom-l1")
    l1.description = "The Basic Training Loop with an L1 penalty added between Calculate Loss and Backward Pass."
    basic.name = "unrolled-training-loop"
    for pipeline, file in ((basic, "unrolled_training_loop.yaml"), (l1, "custom_l1.yaml")):
        path = pipeline.save(out / file)
        print(f"wrote {path}: {len(pipeline.cards)} cards, {batches} batches")
    looped = training_loop(epochs=LOOP_EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.01)
    path = looped.save(out / "training_loop.yaml")
    print(f"wrote {path}: {len(looped.cards)} cards, {LOOP_EPOCHS} epochs of {batches} batches in one card")
    blocks = loop_blocks(epochs=BLOCK_EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.01)
    path = blocks.save(out / "basic_training_loop.yaml")
    print(f"wrote {path}: {len(blocks.cards)} top-level cards, up to {BLOCK_EPOCHS} epochs of {batches} batches")
    # gradient accumulation, both ways (docs/accumulation.md): loop blocks with a loss scale of 1/k, and the
    # Training Loop card's accumulate; they train alike, bit for bit
    from cardloop.example_accumulation import accumulation_blocks, accumulation_loop

    accumulated = dict(accumulate=4, epochs=LOOP_EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.01, shuffle=True)
    for pipeline, file in ((accumulation_blocks(**accumulated), "gradient_accumulation.yaml"),
                           (accumulation_loop(**accumulated), "gradient_accumulation_loop.yaml")):
        path = pipeline.save(out / file)
        print(f"wrote {path}: {LOOP_EPOCHS} epochs of {batches} batches, a step every 4 and at each epoch's end")
    from cardloop.example_losses import mse_l1_regularization, skip_nonfinite_step

    for pipeline, file in ((mse_l1_regularization(epochs=5, batch_size=BATCH_SIZE, learning_rate=0.01),
                            "mse_l1_regularization.yaml"),
                           (skip_nonfinite_step(epochs=5, batch_size=BATCH_SIZE, learning_rate=0.01),
                            "skip_nonfinite_step.yaml")):
        path = pipeline.save(out / file)
        print(f"wrote {path}: {len(pipeline.cards)} top-level cards, up to 5 epochs of {batches} batches")
    from cardloop.example_optimizers import two_optimizers

    parts = two_optimizers(epochs=BLOCK_EPOCHS, batch_size=BATCH_SIZE)
    path = parts.save(out / "two_optimizers.yaml")
    print(f"wrote {path}: {len(parts.cards)} top-level cards, {BLOCK_EPOCHS} epochs, two optimizers on two parts")
    from cardloop.example_schedulers import warmup_cosine

    scheduled = warmup_cosine(warmup_steps=batches, T_max=batches * (BLOCK_EPOCHS - 1), epochs=BLOCK_EPOCHS,
                              batch_size=BATCH_SIZE, learning_rate=0.01)
    path = scheduled.save(out / "warmup_cosine.yaml")
    print(f"wrote {path}: {BLOCK_EPOCHS} epochs of {batches} batches, warmup + cosine over {BLOCK_EPOCHS * batches}")
