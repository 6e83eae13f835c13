"""What `cardloop sweep`, `sweeps` and `sweep-show` read and print (docs/sweeps.md): `--set` values as YAML,
the results table, its CSV and Parquet files, the list of recorded sweeps."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cardloop.errors import InvalidOption

#: A number in exponent form without a dot (`1e-3`): a float in YAML 1.2, a string to PyYAML's YAML 1.1.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+")
#: Columns of the results table that the printed table leaves out (the files keep them).
_NOT_PRINTED = ("best_metric", "error")


def parse_settings(options: list[str]) -> dict[str, list[Any]]:
    """`--set PATH=V1,V2,...` options -> {path: [values]}: the text after `=` is read as the items of a YAML flow
    list (`[V1,V2,...]`), so `1e-3,0.01` are numbers, `mse,huber` strings, `[64,64],[128,128]` two lists, `true`
    a boolean, `null` None and `"1"` a string; `1e-3` is a float as in YAML 1.2."""
    from cardloop.pipeline.parsing import parse_yaml

    settings: dict[str, list[Any]] = {}
    for option in options:
        path, equals, text = option.partition("=")
        path = path.strip()
        if not equals or not path:
            raise InvalidOption(f"--set '{option}' is not of the form PATH=VALUE[,VALUE...] "
                                "(e.g. --set opt.learning_rate=1e-3,3e-3)")
        if path in settings:
            raise InvalidOption(f"--set names '{path}' twice; give all its values in one: --set {path}=A,B,C")
        values = parse_yaml(f"[{text}]", source=f"--set {path}")
        settings[path] = [_numbers(value) for value in values]
    return settings


def _numbers(value: Any) -> Any:
    """A value with every string of exponent form (`1e-3`) read as the float it is in YAML 1.2."""
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
        return float(value)
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    return value


def write_table(table: Any, csv: Path | None, parquet: Path | None) -> list[Path]:
    """Write the results table as CSV and/or Parquet (settings that are lists or mappings as JSON text)."""
    written = []
    plain = table.copy()
    for column in plain.columns:
        if plain[column].map(lambda v: isinstance(v, (list, dict))).any():
            plain[column] = plain[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    if csv is not None:
        plain.to_csv(csv, index=False)
        written.append(csv)
    if parquet is not None:
        plain.to_parquet(parquet, index=False)
        written.append(parquet)
    return written


def print_results(console: Console, table: Any, title: str) -> None:
    """The results table, one row per variant; metric columns that hold no value in any row are left out, as are
    best_metric (named in the `best_epoch` header) and errors (printed below the table)."""
    shown = [c for c in table.columns if c not in _NOT_PRINTED and table[c].map(_has_value).any()]
    best = next((m for m in table.get("best_metric", []) if isinstance(m, str)), None)
    grid = Table(title=title)
    for column in shown:
        header = f"best_epoch\n({best})" if column == "best_epoch" and best else column
        grid.add_column(header, no_wrap=column in ("run_id", "status"))
    for row in table.to_dict("records"):
        grid.add_row(*(_cell(row[column]) for column in shown))
    console.print(grid)
    for row in table.to_dict("records"):
        if isinstance(row.get("error"), str):
            console.print(f"variant {row['variant']} failed: {row['error']}", highlight=False, markup=False)


def _has_value(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> str:
    if not _has_value(value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def print_sweeps(console: Console, sweeps: list) -> None:
    from cardloop.cli_display import started_text

    table = Table(title="sweeps")
    table.add_column("sweep", no_wrap=True)
    for column in ("pipeline", "settings", "variants", "status", "started"):
        table.add_column(column)
    for found in sweeps:
        done = sum(v.status == "succeeded" for v in found.variants)
        table.add_row(found.sweep_id, found.name, ", ".join(found.settings), f"{done}/{len(found.variants)} succeeded",
                      found.status, started_text(found.started_at))
    console.print(table)
