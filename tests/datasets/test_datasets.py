"""The data sets shipped with cardloop: the digits as `data_load` reads them, and that the package ships them."""

from __future__ import annotations

import fnmatch
import hashlib
import tomllib
from pathlib import Path

import numpy as np

from cardloop.cards.registry import default_registry
from cardloop.datasets import DATASETS_DIR, DIGITS_CSV

DIGITS_SHA256 = "9f7fca3251c178a06039990b75e3023f8b888151d2e2d4579c3ba0d2744a1d00"
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # load_digits().target's bincount
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def load_digits():
    card_type = default_registry().get("data_load")
    return card_type.run(config=card_type.config_model(path="cardloop:digits.csv"))["dataset"]


def test_the_digits_file_is_byte_for_byte_the_one_exported_from_scikit_learn():
    assert hashlib.sha256(DIGITS_CSV.read_bytes()).hexdigest() == DIGITS_SHA256


def test_data_load_reads_the_digits_as_1797_rows_of_64_pixels_and_a_target():
    frame = load_digits()
    assert frame.shape == (1797, 65)
    assert list(frame.columns) == [f"pixel_{r}_{c}" for r in range(8) for c in range(8)] + ["target"]
    assert frame.attrs["target_columns"] == ["target"]


def test_the_digits_have_scikit_learns_class_counts():
    assert np.bincount(load_digits()["target"].to_numpy()).tolist() == DIGITS_CLASS_COUNTS


def test_the_digit_pixels_are_integers_from_0_to_16():
    pixels = load_digits().drop(columns="target").to_numpy()
    assert pixels.dtype.kind == "i" and pixels.min() == 0 and pixels.max() == 16


def test_the_first_digit_is_scikit_learns_first_image_a_zero():
    first = load_digits().iloc[0]
    assert first["target"] == 0
    assert first.drop("target").to_numpy().reshape(8, 8)[1].tolist() == [0, 0, 13, 15, 10, 15, 5, 0]


def test_the_package_data_ships_every_data_set_file_and_its_readme():
    globs = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["cardloop"]
    shipped = [p for p in DATASETS_DIR.iterdir() if p.is_file() and p.suffix != ".py"]
    assert {p.name for p in shipped} >= {"diabetes.csv", "digits.csv", "README.md"}
    for path in shipped:
        assert any(fnmatch.fnmatch(f"datasets/{path.name}", glob) for glob in globs), path.name
