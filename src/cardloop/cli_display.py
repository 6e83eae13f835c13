"""What the CLI prints: the run progress bar, run summaries, card catalogue, run records and outputs."""

from __future__ import annotations

import datetime
import json
import math
import textwrap
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TimeElapsedColumn
from rich.text import Text

from cardloop.pipeline.model import BLOCK_TYPE
from rich.table import Table


class RunProgress:
    """A Rich progress bar driven by run events: top-level cards done of total, the current card (in a loop block,
    each loop's iteration: `epochs 3/10 · batches 17/45 · loss 0.41`), the latest loss.

    Events of a block's body cards (their card id is an iteration path, `epochs[3].batches[7].fwd`) never advance
    the count of cards: they only note the latest iteration, loss and skipped count, which the bar reads when it
    redraws (a few times a second), so that thousands of body events a second cost the run next to nothing."""

    def __init__(self, console: Console, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(_Said(self.describe), BarColumn(), MofNCompleteColumn(), _Said(self.loss_text),
                                 TimeElapsedColumn(), console=console, disable=not enabled, transient=False)
        self.task = None
        self.loss = ""
        self._last: str | None = None  # the id or iteration path of the last card that ran to the end
        self._block: str | None = None  # the top-level block running now
        self._iterations: list[dict[str, Any]] = []  # its latest `progress` event's loops
        self._body_path: str | None = None  # the latest body card event's iteration path
        self._skipped = 0  # body cards skipped in the block running now

    @property
    def last_done(self) -> str | None:
        """The card (or one iteration's body card) that last ran to the end, as a sentence names it."""
        return f"card '{self._last}'" if self._last else None

    def __enter__(self) -> "RunProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def on_event(self, event: Any) -> None:
        kind = event.kind
        if event.position is None and event.card_id is not None and "[" in event.card_id:
            self._body_event(kind, event)
        elif kind == "run_started":
            self.task = self.progress.add_task(f"run {event.run_id}", total=event.total, loss="")
        elif kind == "started":
            self._end_block()
            self.progress.update(self.task, description=f"{event.card_id} ({event.card_type})")
        elif kind == "progress" and event.iterations:
            self._note_loss(event.metrics)
            self._block, self._iterations, self._body_path = event.card_id, event.iterations, None
            self.progress.update(self.task, loss=self.loss)
        elif kind == "progress":
            self._note_loss(event.metrics)
            self.progress.update(self.task, loss=self.loss, description=f"{event.card_id} ({event.card_type}) "
                                                                        f"step {event.step}/{event.steps}")
        elif kind in ("done", "cached"):
            self._last = event.card_id
            self._end_block()
            self._note_loss(event.metrics)
            self.progress.update(self.task, advance=1, loss=self.loss)
        elif kind == "skipped":  # a top-level card whose `when` did not hold: it counts as dealt with
            self._end_block()
            self.progress.update(self.task, advance=1)
        elif kind == "run_finished":
            self._end_block()
            self.progress.update(self.task, description=f"run {event.run_id}: {event.status}")

    def _end_block(self) -> None:
        self._block, self._iterations, self._body_path, self._skipped = None, [], None, 0

    def _body_event(self, kind: str, event: Any) -> None:
        self._body_path = event.card_id
        if kind == "done":
            self._last = event.card_id
            if event.metrics:
                self._note_loss(event.metrics)
        elif kind == "skipped":
            self._skipped += 1

    @property
    def in_block(self) -> bool:
        return self._block is not None or self._body_path is not None

    def describe(self, task: Any) -> str:
        """What the bar says: the task's description, or while a block runs, each loop's iteration (1-based) of
        how many, the latest loss and how many body cards were skipped."""
        if not self.in_block:
            return task.description
        totals = {loop["block"]: loop.get("total") for loop in self._iterations}
        if self._body_path is not None:
            from cardloop.pipeline.paths import parse_path

            path = parse_path(self._body_path)
            loops = list(zip(path.parts, path.indices))
        else:
            loops = [(loop["block"], loop["index"]) for loop in self._iterations]
        parts = [f"{name} {index + 1}/{totals.get(name) or '?'}" for name, index in loops]
        if self.loss:
            parts.append(self.loss)
        if self._skipped:
            parts.append(f"{self._skipped} skipped")
        return " · ".join(parts)

    def loss_text(self, task: Any) -> str:
        """The latest loss beside the count (while a block runs, the description says it)."""
        return "" if self.in_block else task.fields.get("loss", "")

    def _note_loss(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            if "loss" in name:
                self.loss = f"loss {value:.4g}"


class _Said(ProgressColumn):
    """A column of the bar whose text `say(task)` gives when the bar redraws."""

    def __init__(self, say: Callable[[Any], str]):
        super().__init__()
        self.say = say

    def render(self, task: Any) -> Text:
        return Text(self.say(task))


def print_run_summary(console: Console, result: Any) -> None:
    """What a user judges a run by: status, time, loss from first to last step, terminal infos."""
    losses = result.metrics("loss_value")
    console.print(f"[bold]run {result.run_id}[/bold] {result.status} in {result.seconds:.2f}s "
                  f"(store: {result.store_root})")
    diverged = not_finite(losses)
    if diverged:
        before = losses[:diverged[0]]
        console.print(f"[yellow]loss over {len(losses)} steps: {diverged[1]}[/yellow]"
                      + (f"; before it, first {before[0]:.4f}, last {before[-1]:.4f}" if before else ""),
                      highlight=False)
    elif losses:
        quarter = max(1, len(losses) // 4)
        head, tail = losses[:quarter], losses[-quarter:]
        console.print(f"loss over {len(losses)} steps: mean of the first {quarter} {sum(head) / quarter:.4f}, "
                      f"of the last {quarter} {sum(tail) / quarter:.4f}")
    for card_id, ports in result.outputs.items():
        if "metrics" not in getattr(ports, "ports", ports):
            continue
        try:
            metrics = ports["metrics"]
        except KeyError:
            continue
        if isinstance(metrics, dict):
            values = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in metrics.items())
            console.print(f"{card_id}: {values}")


def not_finite(values: list[float]) -> tuple[int, str] | None:
    """Where a series stopped being finite (a loss that diverged: NaN or +/-inf) and a sentence that says so;
    None when every value is finite."""
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if not bad:
        return None
    return bad[0], (f"not finite from step {bad[0]} ({values[bad[0]]}): {len(bad)} of {len(values)} steps are inf "
                    "or nan")


def print_card_types(console: Console, registry: Any) -> None:
    table = Table(title="card types")
    for column in ("id", "category", "inputs", "outputs", "config"):
        table.add_column(column)
    for card_type in registry:
        ports = lambda ps: ", ".join(f"{p.name}:{p.kind}" + ("" if p.required else "?") for p in ps)
        table.add_row(card_type.id, card_type.category, ports(card_type.inputs), ports(card_type.outputs),
                      ", ".join(card_type.config_model.model_fields))
    console.print(table)


def open_records(store: Path | None):
    from cardloop.store.records import existing_records
    from cardloop.store.root import default_store_root

    return existing_records(Path(store) if store is not None else default_store_root())


def started_text(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def print_runs(console: Console, runs: list) -> None:
    table = Table(title="runs")
    table.add_column("run", no_wrap=True)
    for column in ("pipeline", "status", "executor", "persist", "started", "seconds"):
        table.add_column(column)
    for run in runs:
        seconds = f"{run.ended_at - run.started_at:.2f}" if run.ended_at else ""
        table.add_row(run.run_id, run.name, run.status, run.executor, run.persist, started_text(run.started_at),
                      seconds)
    console.print(table)


def _brief(summary: Any) -> str:
    if summary is None:
        return ""
    if isinstance(summary, (int, float)):
        return f"{summary:.6g}"
    if isinstance(summary, list):
        return _list_brief(summary)
    if isinstance(summary, dict):
        if "rows" in summary and isinstance(summary.get("columns"), list):
            return f"table {summary['rows']} rows x {len(summary['columns'])} columns"
        if "shape" in summary and len(summary) <= 8:
            statistics = [f"{k} {summary[k]:.4g}" for k in ("mean", "std", "min", "max")
                          if isinstance(summary.get(k), (int, float))]
            parts = [f"shape {tuple(summary['shape'])}", *statistics]
            return ", ".join(parts)
        text = json.dumps(summary, default=str)
        return text if len(text) <= 100 else text[:97] + "..."
    return str(summary)


def _is_none(output: dict[str, Any]) -> bool:
    """Whether a recorded output is the value None: a scalar or info is recorded whole, so null means None."""
    from cardloop.store.outputs import SUMMARIZED_KINDS

    return output["kind"] in SUMMARIZED_KINDS and "summary" in output and output["summary"] is None \
        and not output.get("digest")


LIST_SHOWN = 5  # a collected list of at most this many numbers is shown whole


def _list_brief(values: list) -> str:
    """A loop block's collected output: a few numbers whole, else how many and the first and last."""
    if len(values) <= LIST_SHOWN and all(v is None or isinstance(v, (int, float, str)) for v in values):
        return "[" + ", ".join("null" if v is None else _brief(v) for v in values) + "]"
    if not values:
        return "[]"
    return f"list of {len(values):,}: first {_brief(values[0]) or 'null'}, last {_brief(values[-1]) or 'null'}"


def print_run(console: Console, store: Path | None, run_id: str) -> None:
    records = open_records(store)
    run = records.get_run(run_id)
    console.print(f"[bold]run {run.run_id}[/bold] '{run.name}': {run.status} "
                  f"({run.executor}, persist {run.persist}, started {started_text(run.started_at)})")
    if run.error:
        console.print(f"[red]{run.error}[/red]", highlight=False)
    rows, blocks = [], []
    for execution in records.execution_rows(run.run_id):
        if execution.card_type == BLOCK_TYPE:
            blocks.append(execution.card_id)
        outputs = "; ".join(f"{port}: {_brief(o.get('summary'))}" if o.get("summary") is not None
                            else f"{port}: none" if _is_none(o)
                            else f"{port}: {o['kind']}" + (" (stored)" if o.get("digest") else "")
                            for port, o in json.loads(execution.outputs).items())
        rows.append((str(execution.position + 1), execution.card_id, execution.card_type, execution.status,
                     f"{execution.seconds * 1000:.2f} ms" if execution.seconds is not None else "",
                     execution.error or outputs))
    print_columns(console, ("#", "card", "type", "status", "time", "outputs"), rows)
    if blocks:
        from cardloop.cli_iterations import print_blocks

        print_blocks(console, records, run.run_id, blocks)
    losses = records.metrics(run.run_id, "loss_value")
    if losses:
        values = [m.value for m in losses]
        finite = [v for v in values if math.isfinite(v)]
        console.print(f"loss_value: {len(values)} steps, first {values[0]:.4f}, last {values[-1]:.4f}"
                      + (f", min {min(finite):.4f}" if finite else ""))
        diverged = not_finite(values)
        if diverged:
            console.print(f"[yellow]loss_value {diverged[1]} (card '{losses[diverged[0]].card_id}' first)[/yellow]",
                          highlight=False)


MIN_LAST_COLUMN = 24  # columns the last cell keeps on a narrow console, however wide the others are


def print_columns(console: Console, headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Rows as aligned plain-text columns under a bold header, the last column wrapped to the console's width
    (on a pipe, no wrapping: see cli._console). A Rich Table measures and renders every cell and takes about a
    millisecond a row: 10 s for a 10,000-card run; this takes a few milliseconds in all."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers[:-1])]
    indent = sum(widths) + 2 * len(widths)
    last = max(MIN_LAST_COLUMN, console.width - indent)
    layout = "  ".join(f"{{:<{width}}}" for width in widths) + "  {}"
    console.print(layout.format(*headers).rstrip(), style="bold", highlight=False, markup=False)
    lines = []
    for row in rows:
        cell = row[-1]
        if len(cell) > last or "\n" in cell:
            cell = f"\n{' ' * indent}".join(textwrap.wrap(cell, last, break_on_hyphens=False)) or cell
        lines.append(layout.format(*row[:-1], cell).rstrip())
    console.file.write("\n".join(lines) + "\n" if lines else "")


def print_card(console: Console, store: Path | None, run_id: str, card_id: str) -> None:
    """Every output of one card: a summary of what the run stored (torch is imported only to read that), or of
    what it recorded. A body card's path (`epochs.batches.fwd`, `epochs[3].batches[7].fwd`): see cli_iterations."""
    from cardloop.pipeline.paths import parse_path
    from cardloop.store.outputs import RunOutputs

    path = parse_path(card_id)
    if "." in path.static:
        from cardloop.cli_iterations import print_body_card

        print_body_card(console, store, run_id, path)
        return
    outputs = RunOutputs(run_id, store)
    outputs.ports(card_id)  # a card the run lacks: a sentence naming the closest ids
    execution = outputs.records.card_execution(outputs.run.run_id, card_id)
    console.print(f"[bold]{card_id}[/bold] ({execution.card_type}) in run {outputs.run.run_id}: "
                  f"{execution.status}, {(execution.seconds or 0) * 1000:.2f} ms")
    if execution.error:
        console.print(f"[red]{execution.error}[/red]", highlight=False)
    print_outputs(console, outputs, card_id)
    if execution.card_type == BLOCK_TYPE:
        from cardloop.cli_iterations import print_blocks

        print_blocks(console, outputs.records, outputs.run.run_id, [card_id])


def print_outputs(console: Console, outputs: Any, card_id: str) -> None:
    """Each output port of a card (RunOutputs) with the summary of what the run stored or recorded of it."""
    for port, output in outputs.ports(card_id).items():
        state = f" (state '{output['state']}')" if output.get("state") else ""
        console.print(f"[cyan]{port}[/cyan] \\[{output['kind']}]{state}")
        summary = outputs.summary(card_id, port)
        if summary is None:
            summary = output.get("summary")
        if summary is None and _is_none(output):
            console.print("  none (the card gave no value for this output)")
        elif summary is None:
            console.print(f"  not stored under persist policy '{outputs.run.persist}'; run with --persist all "
                          "to keep every output")
        else:
            console.print_json(json.dumps(summary, default=str))
