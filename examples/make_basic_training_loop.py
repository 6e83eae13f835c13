"""Generate examples/basic_training_loop.yaml: the guide's Basic Training Loop over one epoch of the
diabetes data (354 training rows after the 20 % test split), built with the Python API.

    python examples/make_basic_training_loop.py
"""

from __future__ import annotations

from pathlib import Path

from cardloop.examples import basic_training_loop

TRAIN_ROWS = 354
BATCH_SIZE = 8

if __name__ == "__main__":
    batches = -(-TRAIN_ROWS // BATCH_SIZE)
    pipeline = basic_training_loop(batches=batches, batch_size=BATCH_SIZE, learning_rate=0.01)
    path = pipeline.save(Path(__file__).with_name("basic_training_loop.yaml"))
    print(f"wrote {path}: {len(pipeline.cards)} cards, {batches} batches")
