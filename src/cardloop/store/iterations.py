"""What the body cards of a run's loop blocks did (docs/blocks.md), read from the run records' `iteration_cards`
rows as numpy arrays: a block's summary (`cardloop show RUN`), one body card over every iteration or in one
iteration (`cardloop show RUN PATH`, the API), the metric values in run order (RunResult.metrics, the API's
metrics) and the rows `cardloop export` writes. A row's blobs become arrays without a Python object per execution,
so a run of 600,000 body executions reads in a few milliseconds. Torch-free."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cardloop.errors import PathNotFound
from cardloop.pipeline.model import BLOCK_TYPE
from cardloop.pipeline.paths import CardPath, format_path
from cardloop.store.record_types import IterationCards

DONE = 1  # a status byte: 1 done, 0 skipped


@dataclass(frozen=True)
class BodyCard:
    """One body card over every iteration of its block in a run: per execution its status (1 done, 0 skipped),
    seconds, iteration indices (one column per enclosing loop, outermost first) and metric values (NaN where
    skipped)."""

    path: str
    card_type: str
    status: np.ndarray
    seconds: np.ndarray
    indices: np.ndarray
    metrics: dict[str, np.ndarray]

    @classmethod
    def of(cls, row: IterationCards) -> BodyCard:
        n = row.executions
        values = np.frombuffer(row.metric_values, dtype=np.float64)
        names = json.loads(row.metric_names)
        return cls(row.path, row.card_type, np.frombuffer(row.status, dtype=np.uint8),
                   np.frombuffer(row.times, dtype=np.float32),
                   np.frombuffer(row.indices, dtype=np.int64).reshape(n, row.depth),
                   {name: values[k * n:(k + 1) * n] for k, name in enumerate(names)})

    @property
    def block(self) -> str:
        """The id of the top-level block it lies in."""
        return self.path.split(".", 1)[0]

    @property
    def loop(self) -> str:
        """The static path of the loop whose body holds it."""
        return self.path.rsplit(".", 1)[0]

    @property
    def done(self) -> np.ndarray:
        return self.status == DONE

    def paths(self, rows: np.ndarray | slice | None = None) -> list[str]:
        """The iteration path of each execution (of `rows`, if given)."""
        template = format_path(self.path, ["{}"] * self.indices.shape[1])
        indices = self.indices if rows is None else self.indices[rows]
        return [template.format(*row) for row in indices.tolist()]


def body_cards(records: Any, run_id: str, path: str | None = None) -> list[BodyCard]:
    """The body cards of a run's blocks (or the one with this static path), in the order the run recorded them.
    A block the run served from the store is read from the run that ran it."""
    found = [BodyCard.of(row) for row in records.iteration_cards(run_id, path)]
    recorded = {card.block for card in found}
    blocks = [path.split(".", 1)[0]] if path else [row.card_id for row in records.execution_rows(run_id)
                                                   if row.status == "cached" and row.card_type == BLOCK_TYPE]
    for block in blocks:
        if block in recorded:
            continue
        source = records.run_that_made(run_id, block)
        if source is not None:
            found.extend(BodyCard.of(row) for row in records.iteration_cards(source, path)
                         if path or row.path.startswith(block + "."))
    return found


def block_ids(cards: list[BodyCard]) -> list[str]:
    return list(dict.fromkeys(card.block for card in cards))


# --- summaries ---------------------------------------------------------------------------------------------


def loop_iterations(cards: list[BodyCard]) -> dict[str, int]:
    """Each loop's iterations over the run, by static path, outermost first: the executions of a card of its body
    (each body card is recorded in every iteration, done or skipped)."""
    found: dict[str, int] = {}
    for card in sorted(cards, key=lambda c: c.path.count(".")):
        found.setdefault(card.loop, len(card.status))
    return found


def series_stats(values: np.ndarray) -> dict[str, Any]:
    """A metric over the executions that ran: how many, first, last (as they are: a diverged loss is NaN) and
    min, max, mean over the finite ones (None when there are none)."""
    finite = values[np.isfinite(values)]
    return {"count": int(values.size),
            "first": float(values[0]) if values.size else None,
            "last": float(values[-1]) if values.size else None,
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "mean": float(finite.mean()) if finite.size else None}


def card_summary(card: BodyCard) -> dict[str, Any]:
    """One body card over every iteration: executions, done, skipped, total and mean seconds of those that ran,
    and each metric's series_stats over them."""
    done = card.done
    ran = int(done.sum())
    seconds = float(card.seconds[done].sum(dtype=np.float64))
    return {"path": card.path, "card_type": card.card_type, "executions": int(card.status.size), "done": ran,
            "skipped": int(card.status.size) - ran, "seconds": seconds, "mean_seconds": seconds / ran if ran else None,
            "metrics": {name: series_stats(values[done]) for name, values in card.metrics.items()}}


def block_summary(cards: list[BodyCard], block: str) -> dict[str, Any]:
    """What a top-level block's body did: each loop's iterations, each body card's card_summary, and each metric's
    mean in every iteration of the outermost loop (the loss per epoch), NaN where no execution of it ran."""
    mine = [card for card in cards if card.block == block]
    iterations = loop_iterations(mine)
    means: dict[str, list[float]] = {}
    outer = max((int(card.indices[:, 0].max()) + 1 for card in mine if card.indices.size), default=0)
    for card in mine:
        for name, values in card.metrics.items():
            ran = card.done & np.isfinite(values)
            where = card.indices[ran, 0]
            counts = np.bincount(where, minlength=outer)
            totals = np.bincount(where, weights=values[ran], minlength=outer)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[f"{card.path}.{name}"] = (totals / counts).tolist()
    return {"block": block, "loops": [{"loop": loop, "iterations": n} for loop, n in iterations.items()],
            "cards": [card_summary(card) for card in mine], "per_iteration": {"loop": block, "means": means}}


def one_iteration(card: BodyCard, path: CardPath, run_id: str) -> dict[str, Any]:
    """One execution of a body card: its status, seconds and metric values. PathNotFound, saying which loop ran
    how many iterations, when the run has no such iteration."""
    target = np.asarray(path.indices, dtype=np.int64)
    rows = np.flatnonzero((card.indices == target).all(axis=1))
    if not rows.size:
        raise PathNotFound(missing_iteration(card, path, run_id))
    row = int(rows[-1])  # a block resumed part-way may have recorded an iteration twice: the last is the one kept
    done = bool(card.status[row] == DONE)
    return {"path": str(path), "static_path": card.path, "card_type": card.card_type, "indices": list(path.indices),
            "status": "done" if done else "skipped", "seconds": float(card.seconds[row]),
            "metrics": {name: float(values[row]) for name, values in card.metrics.items()} if done else {}}


def missing_iteration(card: BodyCard, path: CardPath, run_id: str) -> str:
    """The sentence for an iteration path the run lacks: the first loop on the way whose iteration is not there,
    and how many iterations it ran (there)."""
    keep = np.ones(len(card.status), dtype=bool)
    for depth, index in enumerate(path.indices):
        ran = np.unique(card.indices[keep, depth])
        if index not in ran:
            loop = path.loops[depth]
            enclosing = ".".join(f"{name}[{i}]" for name, i in zip(path.parts, path.indices[:depth]))
            where = f" in {enclosing}" if enclosing else ""
            span = f" ({ran.min()} to {ran.max()})" if ran.size else ""
            return (f"run {run_id} has no '{path}': loop '{loop}' ran {ran.size} iteration(s){where}{span}, "
                    "counted from 0")
        keep &= card.indices[:, depth] == index
    return f"run {run_id} has no '{path}'"


def missing_card(cards: list[BodyCard], static: str, run_id: str) -> str:
    """The sentence for a static path that names no body card of the run."""
    block = static.split(".", 1)[0]
    mine = [card.path for card in cards if card.block == block]
    if not mine:
        blocks = block_ids(cards)
        known = f"its blocks: {', '.join(blocks)}" if blocks else "it ran no loop block"
        return f"run {run_id} has no loop block '{block}' with recorded iterations; {known}"
    close = difflib.get_close_matches(static, mine, n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"its body cards: {', '.join(mine)}"
    return f"run {run_id} has no body card '{static}' in block '{block}'; {hint}"


def find_card(cards: list[BodyCard], static: str, run_id: str) -> BodyCard:
    for card in cards:
        if card.path == static:
            return card
    raise PathNotFound(missing_card(cards, static, run_id))


# --- metric values in run order ----------------------------------------------------------------------------


def body_positions(pipeline: dict[str, Any]) -> dict[str, int]:
    """The position of every card in its own script (a block's body, or the pipeline), by static path."""
    found: dict[str, int] = {}

    def walk(cards: list, prefix: str) -> None:
        for position, card in enumerate(cards):
            path = prefix + str(card.get("id"))
            found[path] = position
            body = card.get("body")
            if isinstance(body, dict):
                walk(body.get("cards") or [], path + ".")

    walk(pipeline.get("cards") or [], "")
    return found


@dataclass(frozen=True)
class Series:
    """A metric's values from a block's body cards in the order they ran, skipped executions left out: for each,
    the body card (an index into `cards`), its row and its value."""

    cards: list[BodyCard]
    which: np.ndarray
    rows: np.ndarray
    values: np.ndarray

    def paths(self) -> list[str]:
        """The iteration path of each value."""
        paths = [card.paths() for card in self.cards] if len(self.cards) > 1 else None
        if paths is None:
            return self.cards[0].paths(self.rows) if self.cards else []
        return [paths[w][r] for w, r in zip(self.which.tolist(), self.rows.tolist())]


def block_series(cards: list[BodyCard], block: str, name: str, positions: dict[str, int]) -> Series:
    """The values of metric `name` of block `block`'s body cards, in the order the block ran them: by each loop's
    iteration, and within an iteration by the cards' order in the body (`positions`: body_positions)."""
    mine = [card for card in cards if card.block == block and name in card.metrics]
    keys, which, rows, values = [], [], [], []
    width = 2 * max((card.indices.shape[1] for card in mine), default=0)
    for k, card in enumerate(mine):
        ran = np.flatnonzero(card.done)
        parts = card.path.split(".")
        columns = []
        for depth in range(card.indices.shape[1]):
            columns.append(card.indices[ran, depth])
            place = positions.get(".".join(parts[:depth + 2]), k)
            columns.append(np.full(ran.size, place, dtype=np.int64))
        columns += [np.full(ran.size, -1, dtype=np.int64)] * (width - len(columns))
        keys.append(np.stack(columns) if columns else np.empty((0, ran.size), dtype=np.int64))
        which.append(np.full(ran.size, k, dtype=np.int64))
        rows.append(ran)
        values.append(card.metrics[name][ran])
    if not mine:
        empty = np.empty(0, dtype=np.int64)
        return Series([], empty, empty, np.empty(0))
    key, which_all, rows_all, values_all = (np.concatenate(keys, axis=1), np.concatenate(which),
                                            np.concatenate(rows), np.concatenate(values))
    order = np.lexsort(key[::-1]) if len(mine) > 1 else np.arange(which_all.size)
    return Series(mine, which_all[order], rows_all[order], values_all[order])


def metric_values_by_block(records: Any, run_id: str, name: str, pipeline: dict[str, Any]) -> dict[str, list[float]]:
    """For each top-level block of the run, the values of metric `name` its body cards made, in run order."""
    cards = body_cards(records, run_id)
    positions = body_positions(pipeline)
    return {block: block_series(cards, block, name, positions).values.tolist() for block in block_ids(cards)}


# --- export ------------------------------------------------------------------------------------------------


def iteration_rows(card: BodyCard) -> Iterator[list[Any]]:
    """One row per execution, after `iteration_header`: path, each loop's iteration, status, seconds, metrics."""
    statuses = np.where(card.done, "done", "skipped").tolist()
    columns = [card.indices[:, d].tolist() for d in range(card.indices.shape[1])]
    metrics = [np.where(card.done, values, np.nan).tolist() for values in card.metrics.values()]
    seconds = np.round(card.seconds.astype(np.float64), 9).tolist()  # float32's digits, not float64's noise
    for i, path in enumerate(card.paths()):
        yield [path, *(column[i] for column in columns), statuses[i], seconds[i],
               *("" if statuses[i] != "done" else m[i] for m in metrics)]


def iteration_header(card: BodyCard) -> list[str]:
    return ["path", *CardPath(card.path).parts[:-1], "status", "seconds", *card.metrics]
