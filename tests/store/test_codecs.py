"""The codec registry and the codecs of value kinds: tables, batches, tensors, losses, scalars, infos."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cardloop.errors import StoreError
from cardloop.store import codecs
from cardloop.store.codecs import Codec, CodecContext, codec_for_kind, codec_named, register_codec
from cardloop.batches import BatchList, RowBatches
from cardloop.values import Batch

CTX = CodecContext()


def round_trip(kind: str, value):
    codec = codec_for_kind(kind)
    return codec.decode(codec.encode(value, CTX), CTX)


def batch_list(shuffled: bool, drop_last: bool = False) -> BatchList:
    X, y = torch.randn(10, 3), torch.randn(10, 1)
    rows = RowBatches(X, y).gathered(torch.randperm(10)) if shuffled else RowBatches(X, y)
    return BatchList(lambda: rows, 4, drop_last=drop_last, epoch=2, features=["a", "b", "c"], targets=["t"])


def test_every_builtin_kind_but_any_has_a_codec():
    for kind in ("dataframe", "batch", "batches", "model", "optimizer", "scheduler", "tensor", "loss", "scalar",
                 "info"):
        assert codec_for_kind(kind).kind == kind


def test_an_unknown_kind_is_an_error_that_says_how_to_register_a_codec():
    with pytest.raises(StoreError, match="register_codec"):
        codec_for_kind("point_cloud")


def test_a_custom_codec_serves_its_kind_and_values_on_any_ports(monkeypatch):
    monkeypatch.setattr(codecs, "_by_kind", dict(codecs._by_kind))

    class Point:
        def __init__(self, x: float):
            self.x = x

    class PointCodec(Codec):
        name, kind, extension = "point-json", "point", "json"

        def encode(self, value, ctx):
            return json.dumps(value.x).encode()

        def decode(self, data, ctx):
            return Point(json.loads(data))

        def summarize(self, value):
            return {"x": value.x}

        def accepts(self, value):
            return isinstance(value, Point)

    register_codec(PointCodec())
    assert round_trip("point", Point(2.5)).x == 2.5
    assert codec_for_kind("any", Point(1.0)).name == "point-json"
    assert codec_named("point-json").kind == "point"


@pytest.mark.parametrize("value, kind", [
    (pd.DataFrame({"a": [1]}), "dataframe"), (Batch(torch.zeros(1, 2), torch.zeros(1, 1)), "batch"),
    (batch_list(False), "batches"), (torch.zeros(3), "tensor"), (1.5, "scalar"), (np.int64(3), "scalar"),
    (True, "scalar"), ({"a": 1}, "info"),
    (torch.nn.Linear(1, 1), "model"), (torch.optim.SGD(torch.nn.Linear(1, 1).parameters()), "optimizer"),
])
def test_kind_any_picks_the_codec_of_the_values_type(value, kind):
    assert codec_for_kind("any", value).kind == kind


def test_kind_any_refuses_a_value_no_codec_knows():
    with pytest.raises(StoreError, match="object"):
        codec_for_kind("any", object())


def test_a_table_keeps_column_names_order_and_dtypes():
    table = pd.DataFrame({
        "z_int": np.arange(4, dtype=np.int32), "a_float": [0.5, np.nan, 2.0, 3.0], "flag": [True, False, True, False],
        "text": ["a", "b", None, "d"], "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
        "when": pd.date_range("2024-01-01", periods=4, tz="UTC"), "level": pd.Categorical(["lo", "hi", "lo", "hi"]),
    }, index=[10, 11, 12, 13])
    restored = round_trip("dataframe", table)
    assert list(restored.columns) == list(table.columns)
    assert restored.dtypes.to_dict() == table.dtypes.to_dict()
    pd.testing.assert_frame_equal(restored, table)


def test_a_table_with_duplicated_column_names_is_refused():
    with pytest.raises(StoreError, match="duplicated"):
        codec_for_kind("dataframe").encode(pd.DataFrame([[1, 2]], columns=["a", "a"]), CTX)


def test_a_table_summary_has_rows_columns_dtypes_and_a_head_of_five_records():
    table = pd.DataFrame({"x": range(8), "when": pd.date_range("2024-01-01", periods=8), "v": [np.nan] * 8})
    summary = codec_for_kind("dataframe").summarize(table)
    assert summary["rows"] == 8 and summary["columns"] == ["x", "when", "v"]
    assert summary["dtypes"]["x"] == "int64"
    assert len(summary["head"]) == 5 and summary["head"][0]["x"] == 0 and summary["head"][0]["v"] is None
    json.dumps(summary, allow_nan=False)


def test_a_batch_comes_back_as_a_batch_with_equal_tensors():
    batch = Batch(torch.randn(5, 3), torch.randn(5, 1))
    restored = round_trip("batch", batch)
    assert isinstance(restored, Batch)
    assert torch.equal(restored.X, batch.X) and torch.equal(restored.y, batch.y)
    assert codec_for_kind("batch").summarize(batch)["rows"] == 5


@pytest.mark.parametrize("shuffled, drop_last", [(False, False), (True, False), (True, True)])
def test_a_batch_list_comes_back_equal_with_equal_items(shuffled, drop_last):
    batches = batch_list(shuffled, drop_last)
    restored = round_trip("batches", batches)
    assert isinstance(restored, BatchList) and restored == batches and len(restored) == len(batches)
    for index in range(len(batches)):
        mine, theirs = restored.item(index), batches.item(index)
        assert torch.equal(mine["batch_data"].X, theirs["batch_data"].X)
        assert mine["batch_info"] == theirs["batch_info"]


def test_a_batch_list_summary_says_batches_size_rows_and_order():
    summary = codec_for_kind("batches").summarize(batch_list(True, True))
    assert {key: summary[key] for key in ("batches", "batch_size", "rows", "drop_last", "epoch", "shuffled")} == \
        {"batches": 2, "batch_size": 4, "rows": 10, "drop_last": True, "epoch": 2, "shuffled": True}
    assert summary["X"]["shape"] == [10, 3]
    json.dumps(summary, allow_nan=False)


@pytest.mark.parametrize("tensor", [torch.randn(3, 4), torch.arange(6).reshape(2, 3).T, torch.tensor(2.0),
                                    torch.zeros(0, 2), torch.tensor([True, False]),
                                    torch.randn(4, dtype=torch.float64)])
def test_a_tensor_round_trips_with_shape_dtype_and_values(tensor):
    restored = round_trip("tensor", tensor)
    assert restored.dtype == tensor.dtype and torch.equal(restored, tensor)


def test_a_tensor_that_requires_grad_comes_back_detached():
    prediction = torch.randn(3, requires_grad=True) * 2
    restored = round_trip("tensor", prediction)
    assert not restored.requires_grad and torch.equal(restored, prediction.detach())


def test_a_tensor_summary_gives_shape_dtype_and_statistics():
    summary = codec_for_kind("tensor").summarize(torch.tensor([[1.0, 2.0], [3.0, float("inf")]]))
    assert summary["shape"] == [2, 2] and summary["dtype"] == "float32"
    assert summary["min"] == 1.0 and summary["max"] == "inf"
    json.dumps(summary, allow_nan=False)
    assert set(codec_for_kind("tensor").summarize(torch.zeros(0))) == {"shape", "dtype", "device"}


def test_a_decoded_loss_has_its_value_but_no_graph_and_says_so():
    weight = torch.randn(3, requires_grad=True)
    loss = (weight ** 2).sum()
    codec = codec_for_kind("loss")
    data = codec.encode(loss, CTX)
    restored = codec.decode(data, CTX)
    assert torch.equal(restored, loss.detach())
    assert not restored.requires_grad and restored.grad_fn is None
    assert b'\\"graph\\":\\"dropped\\"' in data
    assert codec.summarize(loss)["graph"] == "live" and codec.summarize(restored)["graph"] == "none"


def test_bytes_of_another_kind_are_refused():
    data = codec_for_kind("tensor").encode(torch.zeros(2), CTX)
    with pytest.raises(StoreError, match="not 'cardloop.loss/1'"):
        codec_for_kind("loss").decode(data, CTX)


@pytest.mark.parametrize("value, plain", [(3, 3), (2.5, 2.5), (True, True), (np.float32(0.5), 0.5),
                                          (np.int64(7), 7), (torch.tensor(1.25), 1.25), (float("nan"), None)])
def test_a_scalar_round_trips_as_a_plain_number(value, plain):
    restored = round_trip("scalar", value)
    assert type(restored) in (int, float, bool)
    assert restored == plain if plain is not None else np.isnan(restored)


def test_a_scalar_must_be_a_number():
    with pytest.raises(StoreError, match="number"):
        codec_for_kind("scalar").encode("three", CTX)


def test_an_info_round_trips_with_numpy_and_torch_values_made_plain():
    info = {"epochs": np.int64(3), "scores": np.array([0.5, 1.0]), "best": torch.tensor(0.25),
            "nested": {"names": ("a", "b")}, "none": None}
    assert round_trip("info", info) == {"epochs": 3, "scores": [0.5, 1.0], "best": 0.25,
                                        "nested": {"names": ["a", "b"]}, "none": None}


def test_an_info_with_a_value_json_cannot_hold_names_where_it_is():
    with pytest.raises(StoreError, match=r"info\.nested\.bad is a set"):
        codec_for_kind("info").encode({"nested": {"bad": {1, 2}}}, CTX)
    with pytest.raises(StoreError, match="keys must be strings"):
        codec_for_kind("info").encode({1: "a"}, CTX)


def test_equal_values_give_equal_bytes():
    for kind, make in [("info", lambda: {"b": 1, "a": [1, 2]}), ("tensor", lambda: torch.arange(5.0)),
                       ("dataframe", lambda: pd.DataFrame({"a": [1.0, 2.0]}))]:
        assert codec_for_kind(kind).encode(make(), CTX) == codec_for_kind(kind).encode(make(), CTX)


def test_load_device_keeps_a_requested_device_and_resolves_as_stored(monkeypatch):
    import torch

    from cardloop.store.codec import AS_STORED, load_device

    assert load_device("cpu", "cuda") == "cpu"
    assert load_device(AS_STORED, "cpu") == "cpu"
    assert load_device(AS_STORED, None) == "cpu"  # written before the device was recorded: always from the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load_device(AS_STORED, "cuda") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_device(AS_STORED, "cuda") == "cpu"
    assert load_device(AS_STORED, "no_such_backend") == "cpu"


def test_tensors_batches_and_losses_record_their_device_and_come_back_as_stored():
    import torch

    from cardloop.store import safetensors_format
    from cardloop.store.codec import AS_STORED, CodecContext
    from cardloop.store.codecs import codec_for_kind
    from cardloop.values import Batch

    values = {"tensor": torch.ones(2, 3), "batch": Batch(torch.ones(2, 3), torch.zeros(2, 1)),
              "loss": torch.tensor(0.5, requires_grad=True) * 2}
    for kind, value in values.items():
        codec = codec_for_kind(kind)
        data = codec.encode(value, CodecContext())
        assert safetensors_format.unpack(data, codec.format)[1]["device"] == "cpu", kind
        restored = codec.decode(data, CodecContext(device=AS_STORED))
        assert (restored.X if kind == "batch" else restored).device.type == "cpu", kind
