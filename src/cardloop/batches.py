"""Rows cut into batches: `RowBatches` (X and y tensors and their batches, as views) and `BatchList`, one epoch's
batches in order, the value of the `batches` kind, which a loop block runs over (docs/blocks.md).

An epoch's shuffled order is the one PyTorch's DataLoader yields with a generator seeded for that epoch
(`epoch_order`). torch is imported where it is used: the card modules that use this one are imported to list
the catalogue, which needs no torch.
"""

from __future__ import annotations

from typing import Any, Callable

from cardloop.values import Batch

#: The shuffle rule, as the cards that shuffle state it.
SHUFFLE_RULE = ("With shuffle, epoch e's row order is the one that DataLoader(TensorDataset(X, y), batch_size, "
                "shuffle=True, generator=torch.Generator().manual_seed(seed + e)) yields: that generator first "
                "draws one int64 (DataLoader's base seed for its workers), then torch.randperm(rows, generator=...).")
ALIGNMENT = 64  # bytes: torch's CPU allocator aligns every tensor so
VIEW_CHUNK = 64  # batches whose views are made together: torch.split makes ~0.5 µs a view, slicing one ~1.1 µs


class RowBatches:
    """Features X and targets y as row-major float32 tensors from torch's allocator, and their batches; `order`
    says which rows of the frame they are, in order (None: the frame's own order). A batch is a view into X and
    y when it starts on an ALIGNMENT boundary, as a fresh tensor does (the bits of a CPU matmul can depend on
    its input's address), and a copy otherwise. Views are made, a VIEW_CHUNK of batches at a time, when a batch
    among them is first asked for, and kept for the next pass: a card run alone for one batch of a large frame
    does not make two tensors for every batch of it. A card that changes a batch in place changes X: the
    version counter torch keeps for in-place changes tells (`changed`), and whoever made X makes it again."""

    def __init__(self, X: Any, y: Any, order: Any = None):
        self.X, self.y, self.order = X, y, order
        self.rows = X.shape[0]
        self.versions = (X._version, y._version)
        #: by batch size: the views made so far (None for a batch not asked for yet), and whether they align
        self._batches: dict[int, tuple[list[tuple | None], bool]] = {}

    def changed(self) -> bool:
        return (self.X._version, self.y._version) != self.versions

    def batch(self, index: int, size: int) -> Batch:
        split = self._batches.get(size)
        if split is None:
            aligned = all(size * t.shape[1] * t.element_size() % ALIGNMENT == 0 for t in (self.X, self.y))
            split = self._batches[size] = ([None] * -(-self.rows // size) if aligned else [], aligned)
        views, aligned = split
        start = index * size
        if aligned:
            view = views[index] or self._make_views(views, index, size)
            X, y, x_address, y_address = view
            if not (X.requires_grad or y.requires_grad) and X.data_ptr() == x_address and y.data_ptr() == y_address:
                return Batch(X, y)
        # a copy when unaligned, or when a card made the shared view require grad or swapped its data
        return Batch(self.X[start:start + size].clone(), self.y[start:start + size].clone())

    def _make_views(self, views: list[tuple | None], index: int, size: int) -> tuple:
        """Make the views of the VIEW_CHUNK batches around `index` that have none yet; return index's."""
        import torch

        first = index - index % VIEW_CHUNK
        start, stop = first * size, min((first + VIEW_CHUNK) * size, self.rows)
        made = zip(torch.split(self.X[start:stop], size), torch.split(self.y[start:stop], size))
        for position, (X, y) in enumerate(made, first):
            if views[position] is None:
                views[position] = (X, y, X.data_ptr(), y.data_ptr())
        return views[index]

    def views_made(self, size: int) -> int:
        """How many batches of `size` have a view kept for the next pass."""
        views = self._batches.get(size, ([], False))[0]
        return sum(view is not None for view in views)

    def gathered(self, order: Any) -> RowBatches:
        """These rows in `order` (indices into them), gathered once into fresh row-major tensors."""
        return RowBatches(self.X[order], self.y[order], order)


def epoch_order(rows: int, seed: int) -> Any:
    """The shuffled row order of an epoch whose generator is seeded with `seed`: the order in which
    `DataLoader(TensorDataset(X, y), batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))`
    yields the rows. Its iterator first draws one int64 from the generator (the base seed of its workers), then
    its sampler draws `torch.randperm(rows)` from it."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(rows, generator=generator)


def count_batches(rows: int, size: int, drop_last: bool) -> int:
    """How many batches of `size` `rows` rows make: the last one may be short, unless `drop_last` drops it."""
    return rows // size if drop_last else -(-rows // size)


def batch_info(index: int, size: int, rows: int, num_batches: int, *, epoch: int, shuffled: bool,
               features: list[str], targets: list[str]) -> dict[str, Any]:
    """What Prepare Batch and a batch list's items say of batch `index`: `rows` are its positions in the
    epoch's order."""
    start = index * size
    stop = min(start + size, rows)
    return {"batch_index": index, "batch_size": size, "rows": [start, stop], "size": stop - start,
            "num_batches": num_batches, "epoch": epoch, "shuffled": shuffled, "features": features,
            "targets": targets}


class BatchList:
    """One epoch's batches in order (the `batches` kind). `len()` is the number of batches; `item(i)` is batch i
    as {"batch_data": Batch, "batch_info": dict, "is_last": bool}, made when it is asked for. `rows()` gives the
    epoch's RowBatches; a list made from a frame finds them again each time, so that a batch a card changed in
    place is made again from the frame, as Prepare Batch's batches are."""

    def __init__(self, rows: Callable[[], RowBatches], batch_size: int, *, drop_last: bool = False,
                 epoch: int = 0, features: list[str] | None = None, targets: list[str] | None = None):
        first = rows()
        self.rows = rows
        self.batch_size, self.drop_last, self.epoch = batch_size, drop_last, epoch
        self.features, self.targets = list(features or []), list(targets or [])
        self.num_rows = first.rows
        self.shuffled = first.order is not None
        self._len = count_batches(first.rows, batch_size, drop_last)

    def __len__(self) -> int:
        return self._len

    def item(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._len:
            raise IndexError(f"batch {index} of a list of {self._len} batches")
        info = batch_info(index, self.batch_size, self.num_rows, self._len, epoch=self.epoch,
                          shuffled=self.shuffled, features=self.features, targets=self.targets)
        return {"batch_data": self.rows().batch(index, self.batch_size), "batch_info": info,
                "is_last": index == self._len - 1}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BatchList):
            return NotImplemented
        import torch

        mine, theirs = self.rows(), other.rows()
        same_order = (mine.order is None and theirs.order is None) or (
            mine.order is not None and theirs.order is not None and torch.equal(mine.order, theirs.order))
        return (same_order and (self.batch_size, self.drop_last, self.epoch, self.features, self.targets)
                == (other.batch_size, other.drop_last, other.epoch, other.features, other.targets)
                and torch.equal(mine.X, theirs.X) and torch.equal(mine.y, theirs.y))

    __hash__ = None  # type: ignore[assignment]  # equal by content, which is mutable tensors

    def __repr__(self) -> str:
        return (f"BatchList({len(self)} batches of {self.batch_size} from {self.num_rows} rows, epoch {self.epoch}, "
                f"{'shuffled' if self.shuffled else 'in order'}{', drop_last' if self.drop_last else ''})")
