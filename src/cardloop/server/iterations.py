"""What the API says of loop blocks (docs/blocks.md): a card by its path (a top-level card, a body card over every
iteration, one iteration), and the points of a metric in run order with every body card's per-iteration values,
as `cardloop show` says them (store/iterations.py). JSON-safe: non-finite numbers go out as strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cardloop.errors import PathNotFound
from cardloop.pipeline.model import BLOCK_TYPE
from cardloop.pipeline.paths import parse_path
from cardloop.server.jsonsafe import finite_json


def card_view(store: Path, records: Any, run: Any, text: str) -> dict[str, Any]:
    """A card of a run by its path: a top-level card's execution and output previews (a block's with its summary);
    a body card over every iteration; or one iteration (its outputs when the run stored them)."""
    from cardloop.server.previews import card_outputs
    from cardloop.store.iterations import block_summary, body_cards, card_summary, find_card, one_iteration

    path = parse_path(text)
    view: dict[str, Any] = {"run_id": run.run_id, "path": text}
    if "." not in path.static:
        execution = records.card_execution(run.run_id, text)
        if execution is None:
            raise PathNotFound(f"run {run.run_id} has no card '{text}'")
        view.update(kind="card", card_type=execution.card_type, status=execution.status, seconds=execution.seconds,
                    error=execution.error, cache_hit=execution.cache_hit,
                    outputs=card_outputs(store, run.run_id, text)["outputs"])
        if execution.card_type == BLOCK_TYPE:
            view["block"] = block_summary(body_cards(records, run.run_id), text)
        return finite_json(view)
    card = find_card(body_cards(records, run.run_id, path.static) or body_cards(records, run.run_id), path.static,
                     run.run_id)
    if not path.is_iteration:
        return finite_json({**view, "kind": "body_card", **card_summary(card)})
    view.update(kind="iteration", **one_iteration(card, path, run.run_id), outputs=None)
    if records.card_execution(run.run_id, str(path)) is not None:
        view["outputs"] = card_outputs(store, run.run_id, str(path))["outputs"]
    return finite_json(view)


def metric_points(records: Any, run: Any, name: str) -> dict[str, Any]:
    """Metric `name` of a run: `points`, every value in the order the run made it ({step, value, card_id}; a body
    card's card_id is its iteration path, `epochs[3].batches[7].loss`), and `iterations`, each body card's
    per-iteration series that made one ({path, card_type, loops, indices, values}; skipped executions left out).
    Built for a plain json.dumps: a block of 100,000 steps gives as many points."""
    from cardloop.store.iterations import block_ids, block_series, body_cards, body_positions

    top = records.metrics(run.run_id, name)
    cards = [card for card in body_cards(records, run.run_id) if name in card.metrics]
    values = _numbers(np.array([m.value for m in top], dtype=np.float64))
    if not cards:
        return {"name": name, "points": [{"step": i, "value": value, "card_id": m.card_id}
                                         for i, (m, value) in enumerate(zip(top, values))], "iterations": []}
    order = {row.card_id: row.position for row in records.execution_rows(run.run_id)}
    positions = body_positions(run.pipeline)
    blocks = sorted((order.get(block, -1), block) for block in block_ids(cards))
    ids: list[str] = []
    numbers: list[Any] = []
    for m, value in zip([*top, None], [*values, None]):  # each block's values before the first card after it
        while blocks and (m is None or blocks[0][0] < order.get(m.card_id, -1)):
            series = block_series(cards, blocks.pop(0)[1], name, positions)
            ids.extend(series.paths())
            numbers.extend(_numbers(series.values))
        if m is not None:
            ids.append(m.card_id)
            numbers.append(value)
    iterations = [{"path": card.path, "card_type": card.card_type, "loops": parse_path(card.path).loops,
                   "indices": card.indices[card.done].tolist(), "values": _numbers(card.metrics[name][card.done])}
                  for card in cards]
    return {"name": name, "points": [{"step": i, "value": value, "card_id": card_id}
                                     for i, (card_id, value) in enumerate(zip(ids, numbers))], "iterations": iterations}


def _numbers(values: np.ndarray) -> list:
    """An array as a JSON list, a non-finite value as its string (jsonsafe.finite_json)."""
    found = values.tolist()
    return found if np.isfinite(values).all() else finite_json(found)
