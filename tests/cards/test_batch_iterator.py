"""training_batch_iterator: an epoch's batches, each item exactly a DataLoader batch and Prepare Batch's batch."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import cardloop
from cardloop import Pipeline
from cardloop.cards.batch_iterator import BatchIteratorConfig, batch_iterator
from cardloop.cards.training import PrepareBatchConfig, frame_tensors, prepare_batch
from cardloop.errors import CardError, CardFailed


def frame(rows=50, features=4):
    values = np.random.default_rng(3).standard_normal((rows, features + 1))
    table = pd.DataFrame(values, columns=[f"x{i}" for i in range(features)] + ["target"])
    table.attrs["target_columns"] = ["target"]
    return table


def iterate(table, epoch=None, **config):
    return batch_iterator.run(config=BatchIteratorConfig(**config), train_dataset=table, epoch=epoch)


def loader_batches(table, epoch=0, *, batch_size, shuffle=False, seed=0, drop_last=False):
    X = torch.tensor(table.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(table[["target"]].values, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed + epoch) if shuffle else None
    return list(DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=generator,
                           drop_last=drop_last))


@pytest.mark.parametrize("shuffle, drop_last, epoch", [(False, False, 0), (True, False, 0), (True, False, 3),
                                                       (True, True, 2), (False, True, 1)])
def test_every_item_is_bit_identical_to_the_dataloader_batch(shuffle, drop_last, epoch):
    table = frame()
    outputs = iterate(table, epoch, batch_size=8, shuffle=shuffle, seed=11, drop_last=drop_last)
    expected = loader_batches(table, epoch, batch_size=8, shuffle=shuffle, seed=11, drop_last=drop_last)
    batches = outputs["batches"]
    assert len(batches) == outputs["num_batches"] == len(expected)
    for index, (X, y) in enumerate(expected):
        batch = batches.item(index)["batch_data"]
        assert torch.equal(batch.X, X) and torch.equal(batch.y, y)
        assert batch.X.is_contiguous() and batch.X.dtype == torch.float32


def test_an_unshuffled_item_is_prepare_batch_s_very_view():
    table = frame(rows=64)  # batches of 16 rows x 4 features start on 64-byte boundaries: views
    batches = iterate(table, batch_size=16)["batches"]
    for index in range(4):
        mine = batches.item(index)["batch_data"]
        theirs = prepare_batch.run(config=PrepareBatchConfig(batch_index=index, batch_size=16),
                                   train_dataset=table)["batch_data"]
        assert mine.X is theirs.X and mine.y is theirs.y


def test_a_shuffled_item_equals_prepare_batch_with_the_same_epoch_and_seed():
    table = frame()
    batches = iterate(table, 4, batch_size=8, shuffle=True, seed=7)["batches"]
    for index in range(len(batches)):
        theirs = prepare_batch.run(config=PrepareBatchConfig(batch_index=index, batch_size=8, shuffle=True, seed=7,
                                                             epoch=4), train_dataset=table)
        mine = batches.item(index)
        assert torch.equal(mine["batch_data"].X, theirs["batch_data"].X)
        assert torch.equal(mine["batch_data"].y, theirs["batch_data"].y)
        assert mine["batch_info"] == theirs["batch_info"]


def test_each_epoch_shuffles_differently_and_the_same_epoch_alike():
    table = frame()
    first = [iterate(table, epoch, batch_size=8, shuffle=True)["batches"] for epoch in (0, 1, 0)]
    assert first[0] == first[2] and first[0] != first[1]


def test_an_empty_epoch_input_is_epoch_zero():
    table = frame()
    assert iterate(table, None, batch_size=8, shuffle=True)["batches"] == \
        iterate(table, 0, batch_size=8, shuffle=True)["batches"]


def test_batch_info_says_index_rows_epoch_and_shuffle():
    info = iterate(frame(), 2, batch_size=8, shuffle=True)["batches"].item(6)["batch_info"]
    assert info == {"batch_index": 6, "batch_size": 8, "rows": [48, 50], "size": 2, "num_batches": 7, "epoch": 2,
                    "shuffled": True, "features": ["x0", "x1", "x2", "x3"], "targets": ["target"]}


def test_the_iterator_makes_no_batch_before_its_items_are_asked_for():
    table = frame(rows=64)
    iterate(table, batch_size=16)
    assert frame_tensors(table, None).views_made(16) == 0


def test_an_item_after_a_card_changed_a_batch_in_place_is_made_again_from_the_frame():
    table = frame(rows=64)
    batches = iterate(table, batch_size=16)["batches"]
    batches.item(0)["batch_data"].X.mul_(0)
    assert torch.equal(batches.item(0)["batch_data"].X, loader_batches(table, batch_size=16)[0][0])


@pytest.mark.parametrize("drop_last, message", [
    (False, r"config field 'batch_size' is 51, larger than the dataset's 50 rows; valid: 1 to 50"),
    (True, r"config field 'batch_size' is 51, larger than the dataset's 50 rows, and drop_last would leave no "
           r"batch; valid: 1 to 50")])
def test_a_batch_size_larger_than_the_data_is_the_user_s_mistake_named(drop_last, message):
    with pytest.raises(CardError, match=message):
        iterate(frame(), batch_size=51, drop_last=drop_last)


@pytest.mark.parametrize("epoch", [-1, 1.5, "two", True, float("nan")])
def test_an_epoch_that_is_no_whole_number_from_zero_is_named(epoch):
    with pytest.raises(CardError, match=r"input 'epoch' is .*; it must be a whole number from 0"):
        iterate(frame(), epoch, batch_size=8)


def test_an_epoch_may_be_a_torch_or_numpy_whole_number():
    table = frame()
    expected = iterate(table, 2, batch_size=8, shuffle=True)["batches"]
    assert iterate(table, torch.tensor(2), batch_size=8, shuffle=True)["batches"] == expected
    assert iterate(table, np.int64(2), batch_size=8, shuffle=True)["batches"] == expected


def test_a_seed_plus_epoch_past_torch_s_range_is_named():
    with pytest.raises(CardError, match=r"config field 'seed' is 18446744073709551615, and seed \+ epoch"):
        iterate(frame(), 1, batch_size=8, shuffle=True, seed=2**64 - 1)


def test_its_batches_output_is_an_iterator_of_batch_data_batch_info_and_is_last():
    port = batch_iterator.output("batches")
    assert port.kind == "batches"
    assert [(item.name, item.kind) for item in port.items] == [("batch_data", "batch"), ("batch_info", "info"),
                                                               ("is_last", "scalar")]


@pytest.mark.parametrize("drop_last, batches", [(False, 7), (True, 6)])
def test_is_last_holds_for_the_epoch_s_last_batch_only(drop_last, batches):
    items = iterate(frame(), batch_size=8, drop_last=drop_last)["batches"]
    assert [items.item(i)["is_last"] for i in range(len(items))] == [False] * (batches - 1) + [True]


def test_a_run_stores_the_batch_list_and_it_reloads_equal(regression_csv, store):
    p = Pipeline(name="iterate")
    data = p.add("data_load", "data", path=str(regression_csv))
    p.add("training_batch_iterator", "it", train_dataset=data["dataset"], batch_size=16, shuffle=True, seed=3)
    result = cardloop.run(p, store=store)
    stored = cardloop.load_output(result.run_id, "it", "batches", store=store)
    assert stored == result.outputs["it"]["batches"] and stored.shuffled and len(stored) == 7
    assert result.outputs["it"]["num_batches"] == 7


def test_a_failing_iterator_names_the_card(regression_csv, store):
    p = Pipeline(name="iterate")
    data = p.add("data_load", "data", path=str(regression_csv))
    p.add("training_batch_iterator", "it", train_dataset=data["dataset"], batch_size=101)
    with pytest.raises(CardFailed, match=r"card 'it' \(training_batch_iterator\) failed: config field 'batch_size'"):
        cardloop.run(p, store=store)
