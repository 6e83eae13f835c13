"""Generate the example pipeline files from the Python API: each file's builder and settings are in
`cardloop.example_files` (the editor's examples menu serves the same pipelines).

- basic_training_loop.yaml: the guide's Basic Training Loop as loop blocks: up to 10 epochs over the diabetes
  data (354 training rows after the 20 % test split, shuffled batches of 8), validation on the held-out rows
  after every epoch, early stopping, then evaluation;
- unrolled_training_loop.yaml: the guide's picture, unrolled: six cards for every batch of one epoch;
- training_loop.yaml: the same loop in one `training_loop` card (the guide's loop wrapper), for 3 epochs;
- custom_l1.yaml: the unrolled loop with the guide's "Custom loss with regularization": an
  `l1_regularization` card (examples/cards/l1_regularization.py) between Calculate Loss and Backward Pass;
- warmup_cosine.yaml: the loop as blocks for 10 epochs with a warmup + cosine learning-rate schedule stepped after
  every batch (one epoch of linear warmup, then a cosine over the other nine), its rate recorded each step;
- gradient_accumulation.yaml, gradient_accumulation_loop.yaml: gradient accumulation by the shape of the graph
  (loss scale 1/4, a step every 4 batches and at each epoch's end) and with the Training Loop's `accumulate`;
- mse_l1_regularization.yaml: MSE + an L1 penalty with built-in cards (Regularization);
- skip_nonfinite_step.yaml: Backward and Optimizer Step skipped when the loss is not finite (`when`);
- two_optimizers.yaml: SGD and Adam training two parts of one model;
- classification.yaml: the 8x8 digits shipped with cardloop: a 2-D CNN, cross-entropy, AdamW with a warmup + cosine
  schedule, accuracy on the held-out rows after every epoch.

    python examples/make_examples.py           # writes them here, in examples/
    python examples/make_examples.py FOLDER    # writes them into FOLDER (the tests compare those with these)
"""

from __future__ import annotations

import sys
from pathlib import Path

from cardloop.example_files import EXAMPLES

HERE = Path(__file__).parent

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for file, example in EXAMPLES.items():
        pipeline = example.build()
        path = pipeline.save(out / file)
        print(f"wrote {path}: {len(pipeline.cards)} top-level cards, {example.says}")
