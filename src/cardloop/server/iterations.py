"""What the API says of loop blocks (docs/blocks.md): a card by its path (a top-level card, a body card over every
iteration, one iteration), and the points of a metric in run order with every body card's per-iteration values,
as `cardloop show` says them (store/iterations.py). JSON-safe: non-finite numbers go out as strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    per-iteration series that made one ({path, card_type, loops, indices, values}; skipped executions left out)."""
    from cardloop.store.iterations import block_ids, block_series, body_cards, body_positions

    top = [(m.card_id, m.value) for m in records.metrics(run.run_id, name)]
    cards = [card for card in body_cards(records, run.run_id) if name in card.metrics]
    if not cards:
        return finite_json({"name": name, "points": [{"step": i, "value": value, "card_id": card_id}
                                                     for i, (card_id, value) in enumerate(top)], "iterations": []})
    order = {row.card_id: row.position for row in records.execution_rows(run.run_id)}
    positions = body_positions(run.pipeline)
    keyed = [((order.get(card_id, -1), i), card_id, value) for i, (card_id, value) in enumerate(top)]
    for block in block_ids(cards):
        series = block_series(cards, block, name, positions)
        keyed.extend(((order.get(block, -1), len(top) + i), path, value)
                     for i, (path, value) in enumerate(zip(series.paths(), series.values.tolist())))
    keyed.sort(key=lambda item: item[0])
    iterations = []
    for card in cards:
        done = card.done
        iterations.append({"path": card.path, "card_type": card.card_type, "loops": parse_path(card.path).loops,
                           "indices": card.indices[done].tolist(), "values": card.metrics[name][done].tolist()})
    return finite_json({"name": name, "points": [{"step": i, "value": value, "card_id": card_id}
                                                 for i, (_, card_id, value) in enumerate(keyed)],
                        "iterations": iterations})
