"""Turning what a run's recorder gathered into run-record rows: card executions and metrics.

The recorder describes each executed card compactly (a `done` message: its timing, the summaries of its
outputs and which `RowPlan` renders them); `RowRenderer` makes the rows. It runs in the recorder's writer
thread, or for long runs in a writer process (`record_writer`), so that rendering JSON and inserting rows
never takes the GIL from the training loop. Messages hold only plain Python values.

Messages, in order:
- ("type", card_type, ports): a card type's output ports as (name, kind, metric), before its first row;
- ("cards", [(position, card_id, card_type, cache_key, states_seen, states_made, state_outputs), ...]): what
  does not change while a run goes on, sent once per run for the cards it executes, before their `done`s;
- ("done", position, started_at, seconds, summaries): a card that ran here; `summaries` are the values of its
  `summarized` outputs, in port order (a table as {"rows", "columns"}, a metric series as {"values": [...]}).
  Only these four values cross per card: the training loop's thread builds the message, and the writer
  pickles a batch of them at once;
- ("row", execution_row, metrics): a finished card_executions row and its [(metric, value)] pairs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardloop.kinds import DATAFRAME, INFO, SCALAR, STATE_KINDS
from cardloop.pipeline.model import BLOCK_TYPE
from cardloop.store.records import RunRecords

#: Output kinds recorded whole in the outputs column (a table by its shape): what `done` messages carry.
SUMMARY_KINDS = (INFO, SCALAR, DATAFRAME)


def summarized(kind: str, metric: bool) -> bool:
    """Whether a `done` message carries this output port's summary: the SUMMARY_KINDS, and a metric of any
    other kind that is not training state (a series, such as the loss of every step as a tensor)."""
    return kind in SUMMARY_KINDS or (metric and kind not in STATE_KINDS)


def metric_series(value: Any) -> list[float]:
    """A metric output's values, one per step: a number is one; a 1-D tensor or a list is one per element;
    a recorded summary holds them under "values" (a series) or "value" (a stored number). A value that is
    none of these (a custom card's mistake) records no metric rather than failing the run's records."""
    if value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return metric_series(value["values"] if "values" in value else value.get("value"))
    if hasattr(value, "tolist"):
        value = value.tolist()
    try:
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
    except (TypeError, ValueError):
        return []


def result_metrics(outputs: Mapping[str, Any], name: str, store_root: Path | None, run_id: str) -> list[float]:
    """RunResult.metrics: the metric `name` of every card that made one, in script order: a card's number, each
    step of its series (the losses of a training_loop card), and for a loop block the values its body cards made,
    in the order they ran, skipped executions left out (read from the run records: the block's own outputs are
    collected lists, not metrics)."""
    by_block = _block_metrics(store_root, run_id, name)
    values: list[float] = []
    for card_id, ports in outputs.items():
        if card_id in by_block:
            values.extend(by_block[card_id])
            continue
        if name not in getattr(ports, "ports", ports):
            continue
        try:
            value = ports[name]
        except KeyError:
            continue
        if isinstance(value, (int, float)):
            values.append(value)
        elif getattr(value, "ndim", None) == 1:
            values.extend(metric_series(value))
    return values


def _block_metrics(store_root: Path | None, run_id: str, name: str) -> dict[str, list[float]]:
    """{block id: the values of metric `name` its body cards made} for the run's top-level blocks."""
    if store_root is None:
        return {}
    from cardloop.store.iterations import metric_values_by_block
    from cardloop.store.root import RECORDS_FILE

    with RunRecords(store_root / RECORDS_FILE) as records:
        if not records.iteration_cards(run_id) and not any(row.card_type == BLOCK_TYPE and row.status == "cached"
                                                           for row in records.execution_rows(run_id)):
            return {}
        return metric_values_by_block(records, run_id, name, records.get_run(run_id).pipeline)


def stored_summary(kind: str, metric: bool, value: Any, summary: Any) -> Any:
    """The recorded summary of an output stored as an artifact: a metric series (a metric of a kind that is
    not otherwise summarized) keeps its values beside the codec's summary, so that a cached run replays them."""
    if metric and summarized(kind, metric) and kind not in SUMMARY_KINDS and isinstance(summary, dict):
        return {**summary, "values": metric_series(value)}
    return summary


#: How a RowPlan part becomes JSON: "fixed" is complete; "summary" appends the value as JSON and "}";
#: "raw" appends the value, already JSON text (an artifact's digest and summary), or a null digest.
FIXED, SUMMARY, RAW = "fixed", "summary", "raw"


@dataclass(frozen=True)
class RowPlan:
    """How one kind of card's outputs column is written: one part per output port (how, JSON text), and the
    metric ports as (port, index into the values of the non-fixed parts)."""

    parts: tuple[tuple[str, str], ...]
    metrics: tuple[tuple[str, int], ...]

    def render(self, values: tuple | list) -> str:
        parts, index = [], 0
        for how, text in self.parts:
            if how == FIXED:
                parts.append(text)
                continue
            value = values[index]
            index += 1
            if how == SUMMARY:
                parts.append(text + ("null" if value is None else json.dumps(value, default=plain)) + "}")
            else:
                parts.append(text + ("null, \"summary\": null}" if value is None else value))
        return "{" + ", ".join(parts) + "}"


def row_plan(ports: list[tuple[str, str, bool]], state_outputs: dict[str, str],
             stored: tuple[str, ...] = ()) -> RowPlan:
    """The RowPlan of a card with these output ports (name, kind, metric): a state port names its state,
    a `stored` port is RAW (written as an artifact), a port of SUMMARY_KINDS is a SUMMARY, and any other
    (a batch, predictions, a loss that cards read) is recorded as neither stored nor summarized."""
    parts: list[tuple[str, str]] = []
    metrics = []
    for name, kind, metric in ports:
        head = f"{json.dumps(name)}: {{\"kind\": {json.dumps(kind)}, \"digest\": "
        if kind in STATE_KINDS:
            parts.append((FIXED, head + f"null, \"state\": {json.dumps(state_outputs.get(name))}}}"))
        elif name in stored:
            parts.append((RAW, head))
        elif summarized(kind, metric):
            if metric:
                metrics.append((name, sum(how != FIXED for how, _ in parts)))
            parts.append((SUMMARY, head + "null, \"summary\": "))
        else:
            parts.append((FIXED, head + "null, \"summary\": null}"))
    return RowPlan(tuple(parts), tuple(metrics))


class RowRenderer:
    """Renders a run's messages into rows and writes them; numbers each metric's steps in message order."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.types: dict[str, list] = {}
        self.plans: dict[tuple, RowPlan] = {}
        self.cards: dict[int, tuple] = {}  # position -> (card_id, card_type, cache_key, seen, made JSON, RowPlan)
        self.metric_steps: dict[str, int] = {}

    def write(self, records: RunRecords, messages: list[tuple]) -> None:
        executions, metrics = self.render(messages)
        if executions:
            records.add_card_execution_rows(executions)
        if metrics:
            records.add_metric_rows(metrics)

    def render(self, messages: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        executions: list[tuple] = []
        metrics: list[tuple] = []
        for message in messages:
            if message[0] == "done":
                _, position, started_at, seconds, values = message
                card_id, card_type, cache_key, seen, made, plan = self.cards[position]
                executions.append((self.run_id, card_id, position, card_type, "done", started_at, seconds, None, 0,
                                   cache_key, plan.render(values), seen, made))
                for name, index in plan.metrics:
                    metrics.extend(self._metric(card_id, name, value) for value in metric_series(values[index]))
            elif message[0] == "row":
                executions.append(message[1])
                metrics.extend(self._metric(message[1][1], name, value) for name, value in message[2])
            elif message[0] == "cards":
                self._add_cards(message[1])
            else:
                self.types[message[1]] = message[2]
        return executions, metrics

    def _add_cards(self, cards: list[tuple]) -> None:
        for position, card_id, card_type, cache_key, seen, made, states in cards:
            key = (card_type, tuple(states.items()))
            plan = self.plans.get(key)
            if plan is None:
                plan = self.plans[key] = row_plan(self.types[card_type], states)
            self.cards[position] = (card_id, card_type, cache_key, versions_json(seen), versions_json(made), plan)

    def _metric(self, card_id: str, name: str, value: Any) -> tuple:
        step = self.metric_steps.get(name, 0)
        self.metric_steps[name] = step + 1
        return (self.run_id, card_id, name, step, float(value))


def versions_json(versions: dict[str, int]) -> str:
    """{group: version} as JSON; group names are card ids and port names, which need no escaping."""
    return "{" + ", ".join(f'"{group}": {version}' for group, version in versions.items()) + "}"


def plain(value: Any) -> Any:
    """json.dumps fallback for numpy and torch numbers and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")
