"""What `cardloop show` prints of loop blocks (docs/blocks.md): under a run's cards, each block's summary; and one
body card, over every iteration (`show RUN epochs.batches.fwd`) or in one (`show RUN 'epochs[3].batches[7].fwd'`).
Reads the run records' iteration rows as arrays (store/iterations.py): quick on a run of 600,000 body executions,
and torch-free."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console

from cardloop.cli_display import print_columns
from cardloop.pipeline.paths import CardPath

#: the most rows of per-iteration means a block's summary prints; more iterations are shown in equal ranges
MAX_ITERATION_ROWS = 100


def print_blocks(console: Console, records: Any, run_id: str, blocks: list[str]) -> None:
    """For each top-level block: each loop's iterations, what each body card did, and each metric's mean in every
    iteration of the outermost loop."""
    from cardloop.store.iterations import block_summary, body_cards

    cards = body_cards(records, run_id)
    for block in blocks:
        summary = block_summary(cards, block)
        if not summary["cards"]:
            console.print(f"[bold]block {block}[/bold]: no iterations recorded")
            continue
        loops = ", ".join(f"{loop['loop']} {loop['iterations']:,}" for loop in summary["loops"])
        console.print(f"[bold]block {block}[/bold]: iterations {loops}")
        rows = [(card["path"], card["card_type"], f"{card['done']:,}", f"{card['skipped']:,}",
                 _ms(card["seconds"]), _ms(card["mean_seconds"]), _metrics_brief(card["metrics"]))
                for card in summary["cards"]]
        print_columns(console, ("body card", "type", "done", "skipped", "time", "mean", "metrics"), rows)
        means = summary["per_iteration"]["means"]
        if means:
            console.print(f"mean per iteration of {block}:")
            print_columns(console, (block, *means), _iteration_rows(list(means.values())))


def _iteration_rows(series: list[list[float]]) -> list[tuple[str, ...]]:
    """One row per iteration (1-based), or per range of iterations when there are more than MAX_ITERATION_ROWS."""
    count = max((len(values) for values in series), default=0)
    width = max(1, math.ceil(count / MAX_ITERATION_ROWS))
    rows = []
    for start in range(0, count, width):
        end = min(start + width, count)
        label = f"{start + 1}" if end - start == 1 else f"{start + 1}-{end}"
        cells = []
        for values in series:
            finite = [v for v in values[start:end] if math.isfinite(v)]
            cells.append(f"{sum(finite) / len(finite):.4f}" if finite else "-")
        rows.append((label, *cells))
    return rows


def print_body_card(console: Console, store: Any, run_id: str, path: CardPath) -> None:
    """A body card in one iteration (status, seconds, metrics, and its stored outputs when the run kept them), or
    over every iteration (executions, skipped, seconds, each metric's first, last and least value)."""
    from cardloop.cli_display import print_outputs
    from cardloop.store.iterations import body_cards, card_summary, find_card, one_iteration
    from cardloop.store.outputs import RunOutputs

    outputs = RunOutputs(run_id, store)
    records, run = outputs.records, outputs.run
    card = find_card(body_cards(records, run.run_id, path.static) or body_cards(records, run.run_id), path.static,
                     run.run_id)
    if path.is_iteration:
        found = one_iteration(card, path, run.run_id)
        console.print(f"[bold]{path}[/bold] ({card.card_type}) in run {run.run_id}: {found['status']}, "
                      f"{_ms(found['seconds'])}", highlight=False)
        for name, value in found["metrics"].items():
            console.print(f"{name}: {value:.6g}", highlight=False)
        if records.card_execution(run.run_id, str(path)) is not None:
            print_outputs(console, outputs, str(path))
        return
    summary = card_summary(card)
    console.print(f"[bold]{path}[/bold] ({card.card_type}) in run {run.run_id}: {summary['executions']:,} executions, "
                  f"{summary['done']:,} done, {summary['skipped']:,} skipped; {_ms(summary['seconds'])} in all, "
                  f"{_ms(summary['mean_seconds'])} each", highlight=False)
    for name, stats in summary["metrics"].items():
        console.print(f"{name}: {_stats_brief(stats)}", highlight=False)
    if len(card.status):
        console.print(f"one iteration: cardloop show {run.run_id} '{card.paths(slice(0, 1))[0]}'", highlight=False)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.2f} ms"


def _stats_brief(stats: dict[str, Any]) -> str:
    if not stats["count"]:
        return "no values"
    least = f", min {stats['min']:.4f}" if stats["min"] is not None else ""
    return f"{stats['count']:,} values, first {stats['first']:.4f}, last {stats['last']:.4f}{least}"


def _metrics_brief(metrics: dict[str, dict[str, Any]]) -> str:
    return "; ".join(f"{name} {_stats_brief(stats)}" for name, stats in metrics.items())
