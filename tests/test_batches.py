"""Rows cut into batches: an epoch's shuffled order is DataLoader's, and a BatchList hands out its batches
lazily, one item per batch."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cardloop.batches import BatchList, RowBatches, count_batches, epoch_order


def rows(count=10, features=3):
    X = torch.arange(count * features, dtype=torch.float32).reshape(count, features)
    return X, torch.arange(count, dtype=torch.float32).reshape(count, 1)


@pytest.mark.parametrize("count, seed", [(10, 0), (37, 5), (1000, 2**40)])
def test_an_epoch_order_is_the_order_a_seeded_shuffling_dataloader_yields(count, seed):
    X, y = rows(count)
    loader = DataLoader(TensorDataset(X, y), batch_size=count, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    (_, yielded), = list(loader)
    assert torch.equal(epoch_order(count, seed), yielded.flatten().long())


def test_an_epoch_order_is_not_a_bare_randperm_of_the_seed():
    """DataLoader draws its workers' base seed from the generator before its sampler's randperm."""
    assert not torch.equal(epoch_order(10, 5), torch.randperm(10, generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("count, size, drop_last, expected", [
    (10, 4, False, 3), (10, 4, True, 2), (8, 4, True, 2), (3, 4, True, 0), (3, 4, False, 1)])
def test_count_batches_keeps_or_drops_a_short_last_batch(count, size, drop_last, expected):
    assert count_batches(count, size, drop_last) == expected == len(
        DataLoader(TensorDataset(*rows(count)), batch_size=size, drop_last=drop_last))


def test_gathered_rows_are_fresh_row_major_tensors_in_the_order_given():
    source = RowBatches(*rows())
    order = torch.tensor([3, 1, 2, 0, 9, 8, 7, 6, 5, 4])
    gathered = source.gathered(order)
    assert torch.equal(gathered.X, source.X[order]) and torch.equal(gathered.y, source.y[order])
    assert gathered.X.is_contiguous() and gathered.X.data_ptr() != source.X.data_ptr()
    assert gathered.order is order


def test_a_batch_list_has_one_item_per_batch_with_its_rows_and_info():
    X, y = rows(10)
    batches = BatchList(lambda: RowBatches(X, y), 4, features=["a", "b", "c"], targets=["t"])
    assert len(batches) == 3
    last = batches.item(2)
    assert torch.equal(last["batch_data"].X, X[8:]) and torch.equal(last["batch_data"].y, y[8:])
    assert last["batch_info"] == {"batch_index": 2, "batch_size": 4, "rows": [8, 10], "size": 2, "num_batches": 3,
                                  "epoch": 0, "shuffled": False, "features": ["a", "b", "c"], "targets": ["t"]}


def test_a_batch_list_with_drop_last_leaves_out_the_short_batch():
    batches = BatchList(lambda: RowBatches(*rows(10)), 4, drop_last=True)
    assert len(batches) == 2
    with pytest.raises(IndexError, match="batch 2 of a list of 2 batches"):
        batches.item(2)


def test_a_batch_list_makes_no_batch_until_one_is_asked_for():
    source = RowBatches(*rows(256, 4))  # batches of 16 rows start on 64-byte boundaries: they are views
    batches = BatchList(lambda: source, 16)
    assert source.views_made(16) == 0
    batches.item(3)
    assert source.views_made(16) == 16  # the views of batch 3's chunk, made when it was asked for


def test_batch_lists_are_equal_when_rows_order_and_settings_are():
    X, y = rows(10)
    order = torch.arange(10).flip(0)
    same = [BatchList(lambda: RowBatches(X.clone(), y.clone(), order.clone()), 4) for _ in range(2)]
    assert same[0] == same[1]
    assert same[0] != BatchList(lambda: RowBatches(X, y, order), 4, drop_last=True)
    assert same[0] != BatchList(lambda: RowBatches(X, y), 4)
    assert same[0] != BatchList(lambda: RowBatches(X, y, order), 5)
    assert same[0] != BatchList(lambda: RowBatches(X + 1, y, order), 4)
