"""A sweep's results table, read from the run records: one row per variant with its settings, the last value of
every metric its run recorded, how many iterations each top-level loop block ran, the best epoch, its status and
run id (docs/sweeps.md). Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cardloop.pipeline.model import BLOCK_TYPE

#: Metrics that are better when higher; any other is better when lower (a loss, an error).
HIGHER_IS_BETTER = ("accuracy", "f1", "r2")
EARLY_STOPPING = "training_early_stopping"
FIXED = ("variant", "status", "run_id", "best_epoch", "best_metric", "best_value", "error")


def variant_metrics(records: Any, run_id: str) -> dict[str, Any]:
    """A run's final metrics, `<card path>.<metric>` -> its last value (a top-level card's, or a body card's in
    the last iteration it ran), `<block>.iterations` for each top-level block (the epochs an early-stopped loop
    ran), and the best epoch (best_epoch, best_metric, best_value) where a block recorded a metric every epoch."""
    from cardloop.store.iterations import body_cards

    found: dict[str, Any] = {}
    for metric in records.metrics(run_id):  # by name and step: the last one written wins
        found[f"{metric.card_id}.{metric.name}"] = metric.value
    cards = body_cards(records, run_id)
    for card in cards:
        for name, values in card.metrics.items():
            ran = values[card.done]
            if ran.size:
                found[f"{card.path}.{name}"] = float(ran[-1])
    for card in cards:
        if card.indices.shape[1] == 1:  # a card of a top-level block's body: one execution per iteration
            found.setdefault(f"{card.block}.iterations", int(card.indices[:, 0].max()) + 1 if card.indices.size else 0)
    found.update(best_epoch(records.get_run(run_id).pipeline, cards))
    return found


def best_epoch(pipeline: dict[str, Any], cards: list) -> dict[str, Any]:
    """The iteration of a top-level block (its epoch, from 0) in which a per-epoch metric was best: the metric
    its Early Stopping card watches, in that card's mode; else the first metric of a card run once per epoch
    (higher is better for accuracy, f1 and r2, lower for the rest). {} when no block recorded one."""
    watched = _watched_metrics(pipeline)
    per_epoch = [(card, name) for card in cards if card.indices.shape[1] == 1 for name in card.metrics]
    chosen = next(((card, name, watched[f"{card.path}.{name}"]) for card, name in per_epoch
                   if f"{card.path}.{name}" in watched), None)
    if chosen is None and per_epoch:
        card, name = per_epoch[0]
        chosen = card, name, "max" if any(word in name for word in HIGHER_IS_BETTER) else "min"
    if chosen is None:
        return {}
    card, name, mode = chosen
    values = np.where(card.done, card.metrics[name], np.nan)
    if not np.isfinite(values).any():
        return {}
    row = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
    return {"best_epoch": int(card.indices[row, 0]), "best_metric": f"{card.path}.{name}",
            "best_value": float(values[row])}


def _watched_metrics(pipeline: dict[str, Any]) -> dict[str, str]:
    """{'<block>.<card>.<port>': mode} for the metric each Early Stopping card in a top-level block's body
    watches."""
    found = {}
    for block in pipeline.get("cards") or []:
        if block.get("type") != BLOCK_TYPE:
            continue
        for card in (block.get("body") or {}).get("cards") or []:
            source = (card.get("inputs") or {}).get("metric")
            if card.get("type") == EARLY_STOPPING and isinstance(source, str):
                found[f"{block['id']}.{source}"] = (card.get("config") or {}).get("mode", "min")
    return found


def results_table(store_root: Path, outcomes: list, sort: str | None = None):
    """A pandas DataFrame, one row per variant (`outcomes`: SweepVariant records): `variant` (its index), its
    settings, status, run_id, the best epoch, the final metrics (variant_metrics) and the error of a failed one;
    sorted by the column `sort` (best first: descending for a metric that is better higher, else ascending; NaN
    last)."""
    import pandas as pd

    from cardloop.store.records import existing_records

    records = existing_records(Path(store_root))
    rows = []
    for outcome in outcomes:
        row: dict[str, Any] = {"variant": outcome.index, **outcome.settings,
                               "status": outcome.status, "run_id": outcome.run_id}
        if outcome.run_id is not None:
            row.update(variant_metrics(records, outcome.run_id))
        row["error"] = outcome.error
        rows.append(row)
    table = pd.DataFrame(rows)
    settings = list(outcomes[0].settings) if outcomes else []
    first = [c for c in ("variant", *settings, "status", "best_epoch", "best_metric", "best_value") if c in table]
    table = table[first + [c for c in table.columns if c not in first and c not in ("run_id", "error")]
                  + ["run_id", "error"]]
    return sorted_results(table, sort, settings) if sort is not None else table


def sorted_results(table: Any, sort: str, settings: list[str]) -> Any:
    """The results sorted by the column `sort`, best first: descending when its last part names a metric that is
    better higher (accuracy, f1, r2), else ascending; NaN last, ties in variant order. InvalidOption listing the
    metric columns when there is no such column."""
    from cardloop.errors import InvalidOption

    if sort not in table.columns:
        metrics = [c for c in table.columns if c not in FIXED and c not in settings]
        raise InvalidOption(f"cannot sort by '{sort}': the sweep's results have no such column; its metrics: "
                            f"{', '.join(metrics) or 'none'}")
    higher = any(word in sort.rsplit(".", 1)[-1] for word in HIGHER_IS_BETTER)
    return table.sort_values(sort, ascending=not higher, na_position="last", kind="stable").reset_index(drop=True)
