"""Data cards: load a table, split it into train and test, standardize its columns.

Tables travel as pandas DataFrames whose `attrs["target_columns"]` names the target columns; every
other column is a feature. Each card returns new frames and never changes the ones it receives.
pandas and numpy are imported inside the run functions, so importing this module stays light.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from pydantic import Field

from cardloop.cards.bounds import MAX_SEED
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.datasets import DATASETS_DIR
from cardloop.errors import CardError
from cardloop.kinds import DATAFRAME, INFO

TARGET_COLUMNS_ATTR = "target_columns"
PACKAGED_PREFIX = "cardloop:"
DEFAULT_TARGET = "target"
_READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet"}


class DataLoadConfig(CardConfig):
    path: str = Field(description="CSV or Parquet file; relative to the current directory, or "
                                  "'cardloop:<name>' for a data set shipped with cardloop")
    target_columns: list[str] | None = Field(
        default=None, min_length=1,
        description="target columns; default: the column named 'target', else the last column")


def resolve_path(path: str) -> Path:
    """The file a `data_load` path names: `cardloop:<name>` is a packaged data set, others are local."""
    if path.startswith(PACKAGED_PREFIX):
        return (DATASETS_DIR / path[len(PACKAGED_PREFIX):]).resolve()
    return Path(path).expanduser().resolve()


def source_files(config: DataLoadConfig | Mapping[str, Any]) -> list[Path]:
    """The files a `data_load` card reads, for the engine to hash into its cache key.

    Takes the card's config (model or plain dict). A file that does not exist is still listed; the
    card itself reports it when it runs.
    """
    if not isinstance(config, DataLoadConfig):
        config = DataLoadConfig(**config)
    return [resolve_path(config.path)]


def target_columns_of(frame: Any) -> list[str]:
    """The target columns recorded on a frame (empty when none are)."""
    return list(frame.attrs.get(TARGET_COLUMNS_ATTR) or [])


def check_numeric(frame: Any, columns: list[str], where: str) -> None:
    """Refuse a column that is not numeric, naming it and its dtype."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    for column in columns:
        dtype = frame[column].dtype
        if not is_numeric_dtype(dtype) or is_bool_dtype(dtype):
            raise CardError(f"column '{column}' of {where} has dtype {dtype}, but cards need numeric "
                            f"columns; encode it as numbers or drop it first")


def split_columns(dataset: Any, override: list[str] | None) -> tuple[list[str], list[str]]:
    """Feature and target column names, checked against the dataset."""
    columns = [str(c) for c in dataset.columns]
    targets = list(override) if override is not None else target_columns_of(dataset)
    if not targets:
        raise CardError("the dataset records no target columns (load it with data_load) and card config "
                        "field 'target_columns' is not set")
    for name in targets:
        if name not in columns:
            field = "card config field 'target_columns'" if override is not None else "the dataset"
            raise CardError(f"{field} names target column '{name}', which the dataset lacks; "
                            f"available columns: {', '.join(columns)}")
    features = [c for c in columns if c not in targets]
    if not features:
        raise CardError(f"the dataset has no feature columns: every column ({', '.join(columns)}) is a target")
    return features, targets


def _missing_file_message(path: str, file: Path) -> str:
    if path.startswith(PACKAGED_PREFIX):
        shipped = sorted(f"{PACKAGED_PREFIX}{p.name}" for p in DATASETS_DIR.iterdir() if p.suffix in _READERS)
        return (f"card config field 'path': cardloop ships no data set '{path[len(PACKAGED_PREFIX):]}'; "
                f"shipped data sets: {', '.join(shipped)}")
    where = "" if Path(path).is_absolute() else f" (looked for {file})"
    return f"card config field 'path': file '{path}' does not exist{where}"


def read_table(path: str) -> Any:
    """Read a CSV or Parquet file, chosen by its extension, into a DataFrame."""
    import pandas as pd

    file = resolve_path(path)
    if path.startswith(PACKAGED_PREFIX) and file.parent != DATASETS_DIR.resolve():
        raise CardError(f"card config field 'path': '{path}' is not the name of a data set shipped with cardloop "
                        "(write 'cardloop:<file name>', e.g. 'cardloop:diabetes.csv')")
    reader = _READERS.get(file.suffix.lower())
    if reader is None:
        raise CardError(f"card config field 'path': file '{path}' has extension '{file.suffix}', but "
                        f"data_load reads only {', '.join(_READERS)} files")
    if not file.exists():
        raise CardError(_missing_file_message(path, file))
    if not file.is_file():
        raise CardError(f"card config field 'path': '{path}' is a directory, not a file")
    try:
        return getattr(pd, reader)(file)
    except (ValueError, OSError) as exc:
        raise CardError(f"card config field 'path': file '{path}' could not be read as "
                        f"{file.suffix.lstrip('.').upper()}: {exc}") from exc


def choose_targets(frame: Any, requested: list[str] | None, path: str) -> list[str]:
    """The configured target columns, checked; or the default: 'target', else the last column."""
    columns = [str(c) for c in frame.columns]
    if requested is None:
        return [DEFAULT_TARGET if DEFAULT_TARGET in columns else columns[-1]]
    if len(set(requested)) != len(requested):
        raise CardError(f"card config field 'target_columns' names a column twice: {requested}")
    for name in requested:
        if name not in columns:
            raise CardError(f"card config field 'target_columns': column '{name}' is not in '{path}'; "
                            f"available columns: {', '.join(columns)}")
    return list(requested)


@card(
    "data_load",
    title="Load data",
    category="data",
    inputs=(),
    outputs=(Port("dataset", DATAFRAME, "the table, with its target columns recorded"),),
    config=DataLoadConfig,
    source_files=source_files,
)
def data_load(config: DataLoadConfig) -> dict[str, Any]:
    """Read a CSV or Parquet table and record which columns are targets; all others are features."""
    frame = read_table(config.path)
    if frame.shape[1] == 0 or len(frame) == 0:
        raise CardError(f"card config field 'path': file '{config.path}' has no rows or no columns")
    frame.columns = [str(c) for c in frame.columns]
    targets = choose_targets(frame, config.target_columns, config.path)
    if len(targets) == frame.shape[1]:
        raise CardError(f"file '{config.path}' has no feature columns: every column "
                        f"({', '.join(targets)}) is a target")
    check_numeric(frame, list(frame.columns), f"'{config.path}'")
    frame.attrs[TARGET_COLUMNS_ATTR] = targets
    return {"dataset": frame}


class DataSplitConfig(CardConfig):
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="share of rows for the test set")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="seed of the shuffle (numpy default_rng)")
    shuffle: bool = Field(default=True, description="shuffle before splitting; if false the last rows are the test set")


def take_rows(frame: Any, rows: Any) -> Any:
    """The given rows as a new frame with a fresh index and its own copy of the attrs."""
    part = frame.iloc[rows].reset_index(drop=True)
    part.attrs = copy.deepcopy(frame.attrs)
    return part


@card(
    "data_split",
    title="Split train/test",
    category="data",
    inputs=(Port("dataset", DATAFRAME, "the table to split"),),
    outputs=(Port("train_dataset", DATAFRAME, "the training rows"),
             Port("test_dataset", DATAFRAME, "the held-out rows")),
    config=DataSplitConfig,
)
def data_split(config: DataSplitConfig, dataset: Any) -> dict[str, Any]:
    """Split rows into a train and a test table, reproducibly for a given seed."""
    import numpy as np

    rows = len(dataset)
    n_test = int(np.floor(rows * config.test_fraction + 0.5))
    if n_test == 0 or n_test == rows:
        raise CardError(f"card config field 'test_fraction': {config.test_fraction} of {rows} row(s) leaves "
                        f"the {'test' if n_test == 0 else 'train'} set empty; use a fraction that keeps at "
                        f"least one row on each side")
    order = np.random.default_rng(config.seed).permutation(rows) if config.shuffle else np.arange(rows)
    n_train = rows - n_test
    return {"train_dataset": take_rows(dataset, order[:n_train]),
            "test_dataset": take_rows(dataset, order[n_train:])}


class DataNormalizeConfig(CardConfig):
    columns: list[str] | None = Field(
        default=None, description="columns to standardize; default: every feature column")
    normalize_targets: bool = Field(default=False, description="standardize the target columns too")


def columns_to_normalize(frame: Any, config: DataNormalizeConfig) -> list[str]:
    """The configured columns (checked against the train frame), plus the targets if asked."""
    targets = target_columns_of(frame)
    available = [str(c) for c in frame.columns]
    if config.columns is None:
        chosen = [c for c in available if c not in targets]
    else:
        chosen = list(dict.fromkeys(config.columns))
        for name in chosen:
            if name not in available:
                raise CardError(f"card config field 'columns': column '{name}' is not in train_dataset; "
                                f"available columns: {', '.join(available)}")
            if name in targets and not config.normalize_targets:
                raise CardError(f"card config field 'columns': '{name}' is a target column; set "
                                f"normalize_targets: true to standardize targets")
    if config.normalize_targets:
        chosen += [t for t in targets if t not in chosen]
    return chosen


def standardize(frame: Any, mean: Any, scale: Any, name: str) -> Any:
    """A copy of `frame` with its columns in `mean` shifted and scaled; attrs kept."""
    columns = list(mean.index)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CardError(f"{name} lacks column(s) {', '.join(missing)} that train_dataset has; both tables "
                        f"need the same columns")
    check_numeric(frame, columns, name)
    result = frame.copy()
    result[columns] = (frame[columns].astype("float64") - mean) / scale
    result.attrs = copy.deepcopy(frame.attrs)
    return result


@card(
    "data_normalize",
    title="Normalize",
    category="data",
    inputs=(Port("train_dataset", DATAFRAME, "the table whose statistics are used"),
            Port("test_dataset", DATAFRAME, "a second table scaled with the train statistics",
                 required=False)),
    outputs=(Port("train_dataset", DATAFRAME, "the standardized train table"),
             Port("test_dataset", DATAFRAME, "the standardized test table (none without a test input)"),
             Port("statistics", INFO, "per-column mean and std of the train table")),
    config=DataNormalizeConfig,
)
def data_normalize(config: DataNormalizeConfig, train_dataset: Any, test_dataset: Any) -> dict[str, Any]:
    """Standardize columns to mean 0 and std 1 using the train table's statistics only."""
    if len(train_dataset) == 0:
        raise CardError("train_dataset has no rows, so it has no statistics to normalize with")
    columns = columns_to_normalize(train_dataset, config)
    check_numeric(train_dataset, columns, "train_dataset")
    values = train_dataset[columns].astype("float64")
    mean, std = values.mean(), values.std(ddof=0)
    empty = [c for c in columns if mean[c] != mean[c]]
    if empty:
        raise CardError(f"column(s) {', '.join(empty)} of train_dataset have no values (all missing)")
    scale = std.where(std > 0, 1.0)
    statistics = {"mean": {c: float(mean[c]) for c in columns}, "std": {c: float(std[c]) for c in columns}}
    return {
        "train_dataset": standardize(train_dataset, mean, scale, "train_dataset"),
        "test_dataset": None if test_dataset is None else standardize(test_dataset, mean, scale, "test_dataset"),
        "statistics": statistics,
    }
