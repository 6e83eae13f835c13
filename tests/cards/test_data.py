"""The data cards: data_load, data_split and data_normalize, on real files in tmp_path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from cardloop.cards.data import source_files
from cardloop.cards.registry import default_registry
from cardloop.datasets import DIABETES_CSV
from cardloop.errors import CardError


def run(type_id: str, inputs: dict | None = None, **config):
    card_type = default_registry().get(type_id)
    return card_type.run(config=card_type.config_model(**config), **(inputs or {}))


def load(path, **config) -> pd.DataFrame:
    return run("data_load", path=str(path), **config)["dataset"]


@pytest.fixture
def table() -> pd.DataFrame:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                          "b": [5, 3, 8, 1, 9, 2, 7, 4, 6, 0],
                          "target": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]})
    frame.attrs["target_columns"] = ["target"]
    return frame


@pytest.fixture
def csv_file(tmp_path, table):
    path = tmp_path / "table.csv"
    table.to_csv(path, index=False)
    return path


# data_load

def test_load_reads_csv_and_records_the_column_named_target(csv_file, table):
    frame = load(csv_file)
    pd.testing.assert_frame_equal(frame, table)
    assert frame.attrs["target_columns"] == ["target"]


def test_load_takes_the_last_column_as_target_when_none_is_named_target(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1, 2], "y": [3, 4], "z": [5, 6]}).to_csv(path, index=False)
    assert load(path).attrs["target_columns"] == ["z"]


def test_load_reads_parquet_with_configured_target_columns(tmp_path, table):
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    frame = load(path, target_columns=["a", "b"])
    assert frame.attrs["target_columns"] == ["a", "b"]
    assert list(frame.columns) == ["a", "b", "target"]


def test_load_resolves_a_relative_path_against_the_current_directory(tmp_path, csv_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(load("table.csv")) == 10


def test_load_reads_the_packaged_diabetes_dataset():
    frame = load("cardloop:diabetes.csv")
    assert frame.shape == (442, 11)
    assert list(frame.columns) == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target"]
    assert frame.attrs["target_columns"] == ["target"]
    assert DIABETES_CSV.is_file()


def test_load_is_declared_deterministic_and_lists_its_source_file(tmp_path, csv_file, monkeypatch):
    card_type = default_registry().get("data_load")
    assert card_type.deterministic and card_type.category == "data"
    monkeypatch.chdir(tmp_path)
    assert source_files(card_type.config_model(path="table.csv")) == [csv_file.resolve()]
    assert source_files({"path": "cardloop:diabetes.csv"}) == [DIABETES_CSV]


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(CardError, match=r"card config field 'path': file '.*nope\.csv' does not exist"):
        load(tmp_path / "nope.csv")


def test_load_lists_the_packaged_datasets_for_an_unknown_one():
    with pytest.raises(CardError, match=r"no data set 'iris\.csv'; shipped data sets: cardloop:diabetes\.csv"):
        load("cardloop:iris.csv")


def test_load_refuses_an_unsupported_extension(tmp_path):
    path = tmp_path / "t.xlsx"
    path.write_text("x")
    with pytest.raises(CardError, match=r"extension '\.xlsx', but data_load reads only \.csv, \.parquet"):
        load(path)


def test_load_names_a_missing_target_column_and_the_available_ones(csv_file):
    with pytest.raises(CardError, match=r"column 'price' is not in .*; available columns: a, b, target"):
        load(csv_file, target_columns=["price"])


def test_load_names_a_non_numeric_feature_column_and_its_dtype(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"city": ["x", "y"], "target": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(CardError, match=r"column 'city' of '.*t\.csv' has dtype (object|str)"):
        load(path)


def test_load_refuses_a_table_without_feature_columns(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"target": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(CardError, match="has no feature columns"):
        load(path)


def test_load_reports_an_unreadable_file(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_text("not parquet")
    with pytest.raises(CardError, match=r"could not be read as PARQUET"):
        load(path)


# data_split

def split(frame, **config):
    out = run("data_split", {"dataset": frame}, **config)
    return out["train_dataset"], out["test_dataset"]


def test_split_partitions_the_rows_by_the_test_fraction(table):
    train, test = split(table, test_fraction=0.3)
    assert (len(train), len(test)) == (7, 3)
    assert sorted([*train["a"], *test["a"]]) == sorted(table["a"])


def test_split_is_reproducible_for_a_seed_and_follows_numpy_default_rng(table):
    first, second = split(table, seed=7), split(table, seed=7)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    order = np.random.default_rng(7).permutation(10)
    assert list(first[0]["a"]) == list(table["a"].iloc[order[:8]])
    assert list(split(table, seed=8)[0]["a"]) != list(first[0]["a"])


def test_split_without_shuffle_holds_out_the_last_rows(table):
    train, test = split(table, shuffle=False, test_fraction=0.2)
    assert list(train["a"]) == list(table["a"][:8]) and list(test["a"]) == [9.0, 10.0]


def test_split_keeps_attrs_and_resets_the_index(table):
    train, test = split(table)
    for part in (train, test):
        assert part.attrs == {"target_columns": ["target"]}
        assert list(part.index) == list(range(len(part)))
    train.attrs["target_columns"].append("b")
    assert table.attrs["target_columns"] == ["target"]


def test_split_refuses_a_fraction_that_leaves_one_side_empty(table):
    with pytest.raises(CardError, match=r"'test_fraction': 0\.01 of 10 row\(s\) leaves the test set empty"):
        split(table, test_fraction=0.01)


@pytest.mark.parametrize("fraction", [0, 1, -0.5])
def test_split_config_refuses_a_fraction_outside_zero_to_one(fraction):
    with pytest.raises(ValidationError):
        default_registry().get("data_split").config_model(test_fraction=fraction)


# data_normalize

def normalize(train, test=None, **config):
    return run("data_normalize", {"train_dataset": train, "test_dataset": test}, **config)


def test_normalize_standardizes_features_with_train_statistics_only(table):
    train, test = table.iloc[:6].reset_index(drop=True), table.iloc[6:].reset_index(drop=True)
    train.attrs = test.attrs = {"target_columns": ["target"]}
    out = normalize(train, test)
    mean, std = train[["a", "b"]].mean(), train[["a", "b"]].std(ddof=0)
    assert out["statistics"] == {"mean": {"a": mean["a"], "b": mean["b"]}, "std": {"a": std["a"], "b": std["b"]}}
    np.testing.assert_allclose(out["train_dataset"][["a", "b"]].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(out["train_dataset"][["a", "b"]].std(ddof=0), 1)
    np.testing.assert_allclose(out["test_dataset"]["a"], (test["a"] - mean["a"]) / std["a"])
    np.testing.assert_allclose(out["test_dataset"]["b"], (test["b"] - mean["b"]) / std["b"])
    pd.testing.assert_series_equal(out["test_dataset"]["target"], test["target"])
    assert out["test_dataset"].attrs == {"target_columns": ["target"]}


def test_normalize_without_a_test_input_returns_none_for_it(table):
    assert normalize(table)["test_dataset"] is None


def test_normalize_leaves_its_inputs_unchanged(table):
    before = table.copy()
    normalize(table, table)
    pd.testing.assert_frame_equal(table, before)


def test_normalize_scales_targets_when_asked(table):
    out = normalize(table, normalize_targets=True)
    assert set(out["statistics"]["mean"]) == {"a", "b", "target"}
    np.testing.assert_allclose(out["train_dataset"]["target"].std(ddof=0), 1)


def test_normalize_only_the_configured_columns(table):
    out = normalize(table, columns=["b"])
    assert list(out["statistics"]["mean"]) == ["b"]
    pd.testing.assert_series_equal(out["train_dataset"]["a"], table["a"])


def test_normalize_centres_a_constant_column_without_dividing_by_zero(table):
    frame = table.assign(c=3.0)
    out = normalize(frame)
    assert out["statistics"]["std"]["c"] == 0.0
    assert list(out["train_dataset"]["c"]) == [0.0] * 10


def test_normalize_names_an_unknown_column(table):
    with pytest.raises(CardError, match=r"'columns': column 'zz' is not in train_dataset; available columns: a, b"):
        normalize(table, columns=["zz"])


def test_normalize_refuses_a_target_column_unless_targets_are_normalized(table):
    with pytest.raises(CardError, match="'target' is a target column; set normalize_targets: true"):
        normalize(table, columns=["target"])


def test_normalize_names_columns_the_test_table_lacks(table):
    with pytest.raises(CardError, match=r"test_dataset lacks column\(s\) b"):
        normalize(table, table.drop(columns=["b"]))
