"""`training_batch_iterator`: an epoch's batches as one iterator output, which a loop block runs over once per
batch (docs/blocks.md). Its batches are Prepare Batch's: unshuffled, batch i is the same view of the frame's
tensors; shuffled, the rows of the epoch's order, gathered once for the epoch."""

from __future__ import annotations

import functools
import numbers

from pydantic import Field

from cardloop.batches import SHUFFLE_RULE, BatchList
from cardloop.cards import training  # as a module: registering the built-in cards may import this one first
from cardloop.cards.bounds import MAX_INT64, MAX_SEED, MIN_SEED
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import BATCH, BATCHES, DATAFRAME, INFO, SCALAR


class BatchIteratorConfig(CardConfig):
    batch_size: int = Field(default=32, gt=0, le=MAX_INT64, description="Size of each batch.")
    shuffle: bool = Field(default=False, description="Shuffle the rows each epoch, as DataLoader(shuffle=True).")
    seed: int = Field(default=0, ge=MIN_SEED, le=MAX_SEED, description="Shuffle seed; epoch e uses seed + e.")
    drop_last: bool = Field(default=False, description="Drop the last batch when it is short, as DataLoader does.")
    target_columns: list[str] | None = Field(
        default=None, description="Override the target columns recorded by the data card.")


@card(
    "training_batch_iterator",
    title="Batch Iterator",
    category="training",
    description="An epoch's batches in order, as DataLoader yields them: a loop block over `batches` runs once per "
                "batch, with batch_data and batch_info of that batch. Without shuffle, the frame's order (batch i is "
                "Prepare Batch's batch i). " + SHUFFLE_RULE,
    inputs=[Port("train_dataset", DATAFRAME, "Training dataset (DataFrame)."),
            Port("epoch", SCALAR, "Which epoch (0-based; a loop's iteration): seeds its shuffle. Empty: 0.",
                 required=False)],
    outputs=[Port("batches", BATCHES, "The epoch's batches, one loop iteration each.",
                  items=(Port("batch_data", BATCH, "Batch tensors X and y."),
                         Port("batch_info", INFO, "Batch metadata: index, size, rows, epoch, shuffled."),
                         Port("is_last", SCALAR, "True for the epoch's last batch (a `when` can close a window "
                                                 "of gradient accumulation there)."))),
             Port("num_batches", SCALAR, "How many batches the epoch has.")],
    config=BatchIteratorConfig,
)
def batch_iterator(config: BatchIteratorConfig, train_dataset, epoch) -> dict:
    epoch = epoch_number(epoch)
    seed = training.epoch_seed(config.seed, epoch) if config.shuffle else None
    tensors = training.frame_tensors(train_dataset, config.target_columns)
    size, rows = config.batch_size, tensors.rows
    if rows == 0:
        raise CardError("input 'train_dataset' has no rows, so it makes no batch")
    if size > rows:
        dropped = ", and drop_last would leave no batch" if config.drop_last else ""
        raise CardError(f"config field 'batch_size' is {size}, larger than the dataset's {rows} rows{dropped}; "
                        f"valid: 1 to {rows}")
    batches = BatchList(functools.partial(training.epoch_rows, train_dataset, config.target_columns, seed), size,
                        drop_last=config.drop_last, epoch=epoch, features=tensors.features, targets=tensors.targets)
    return {"batches": batches, "num_batches": len(batches)}


def epoch_number(epoch) -> int:
    """The `epoch` input as an int (None: 0); anything but a whole number from 0 is the user's mistake, named."""
    if epoch is None:
        return 0
    if hasattr(epoch, "item") and getattr(epoch, "ndim", 0) == 0:  # a numpy or torch scalar
        epoch = epoch.item()
    whole = isinstance(epoch, numbers.Real) and not isinstance(epoch, bool) and float(epoch).is_integer()
    if whole and 0 <= epoch <= MAX_INT64:
        return int(epoch)
    raise CardError(f"input 'epoch' is {epoch!r}; it must be a whole number from 0 (a loop's iteration), or empty")
