"""Throughput of a hand-written PyTorch training loop vs. the same loop as a card pipeline (local executor):
unrolled (the guide's six cards per batch), in one `training_loop` card, and as loop blocks (an `epochs` block
over the Batch Iterator holding a `batches` block of the five training cards).

    .venv/bin/python benchmarks/bench_local.py [--quick] [--reps N] [--quiet-wait S] [--shapes SHAPE,...]

Primary figure: loop steps/s = training steps / (first training_prepare_batch start .. last
training_optimizer_step end; for the loop card, its own run), from the run records of a cardloop.run without
a progress callback (for the blocks, the `batches` block's recorded seconds); the whole run (fixed per-run
costs included) is reported beside it.
Hand loop and pipeline alternate in one process. See benchmarks/README.md. Changes nothing in cardloop.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from bench_data import write_diabetes, write_synthetic
from quiet import RETRIES, Noise, cpu_sample, other_cores
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import cardloop
from cardloop.engine.events import EventForwarder, RunHooks  # engine internals: for the breakdown only
from cardloop.engine.local import LocalExecutor
from cardloop.engine.plan import plan_pipeline
from cardloop.examples import basic_training_loop, loop_blocks, training_loop
from cardloop.store.records import RunRecords

BATCH_SIZE, LEARNING_RATE, SEED = 32, 1e-3, 0
FIRST, LAST = "training_prepare_batch", "training_optimizer_step"  # the loop: FIRST's start .. LAST's end
LOOP_CARD = "training_loop"  # or this card's run, in the loop-card pipeline
BATCHES_BLOCK = "epochs.batches"  # or this block's recorded run (its iteration_cards row), in the blocks pipeline
ITERATOR = "epochs.shuffle"  # the Batch Iterator in the epochs block's body
LOSSES = "epochs.batches.loss"  # the body card whose loss_value metric holds the blocks pipeline's losses
UNROLLED, LOOPED, BLOCKS = "unrolled", "loop card", "blocks"
GOALS = {UNROLLED: 0.95, LOOPED: 0.95, BLOCKS: 0.97}  # the lowest ratio each shape should reach with 'checkpoint'
TRAINING_CARDS = (FIRST, "training_zero_grad", "training_forward", "training_loss", "training_backward", LAST)


# --- data and the hand-written loop
# One model on one data file; `steps[policy]` is how many batches a timed run trains.
Case = namedtuple("Case", "name label path input_dim layers steps")


def to_tensors(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The file's features (all columns but the last) and target (the last) as row-major float32 tensors, as
    the prepare-batch card makes them (and torch.tensor(frame.values) would): the layout decides a matmul's bits."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return (torch.from_numpy(np.array(frame.iloc[:, :-1].to_numpy(dtype=np.float32), order="C")),
            torch.from_numpy(np.array(frame.iloc[:, -1:].to_numpy(dtype=np.float32), order="C")))


def make_model(case: Case) -> nn.Sequential:
    """The MLP model_define builds (Linear, ReLU per hidden layer, then Linear), seeded the same way."""
    torch.manual_seed(SEED)
    widths = (case.input_dim, *case.layers)
    hidden = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
    return nn.Sequential(*hidden, nn.Linear(widths[-1], 1))


def hand_loop(X: torch.Tensor, y: torch.Tensor, case: Case, steps: int, loader: bool = False):
    """(seconds of the loop alone, losses). Model and optimizer are built before the clock starts;
    `loss.item()` every step, as the loss card does. Batches are slices, or with `loader` come from a
    DataLoader over a TensorDataset (the tests' oracle idiom)."""
    model = make_model(case)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    losses = []
    batches = iter(DataLoader(TensorDataset(X, y), batch_size=BATCH_SIZE)) if loader else None
    started = time.perf_counter()
    for i in range(steps):
        if batches is None:
            xb, yb = X[i * BATCH_SIZE:(i + 1) * BATCH_SIZE], y[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
        else:
            xb, yb = next(batches)
        opt.zero_grad()
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return time.perf_counter() - started, losses


def hand_setup_seconds(case: Case) -> float:
    """The hand loop's counterpart of a run's fixed cost: read the file, convert, build the model and Adam."""
    started = time.perf_counter()
    to_tensors(case.path)
    torch.optim.Adam(make_model(case).parameters(), lr=LEARNING_RATE)
    return time.perf_counter() - started


# --- the pipeline
def pipeline_for(case: Case, steps: int, shape: str = UNROLLED, root: Path | None = None):
    """The loop as cards: six per batch (UNROLLED), one training_loop card (LOOPED), or loop blocks (BLOCKS)
    over one epoch of a copy of the file trimmed to `steps` batches (written to `root`)."""
    name = f"bench-{case.name}-{steps}-{shape.replace(' ', '-')}"
    if shape == BLOCKS:
        return loop_blocks(path=str(trimmed(case.path, steps * BATCH_SIZE, root)), prepare=False, epochs=1,
                           shuffle=False, patience=None, input_dim=case.input_dim, layers=case.layers,
                           batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, name=name)
    build = basic_training_loop if shape == UNROLLED else training_loop
    return build(path=str(case.path), prepare=False, input_dim=case.input_dim, layers=case.layers,
                 batches=steps, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, name=name)


def trimmed(path: Path, rows: int, root: Path) -> Path:
    """A copy of the data file with its first `rows` rows, byte for byte the same values (CSV: its first lines;
    Parquet: the frame's head), so that one epoch of the Batch Iterator is exactly the hand loop's batches."""
    out = root / f"{path.stem}_first{rows}{path.suffix}"
    if not out.exists():
        if path.suffix == ".parquet":
            pd.read_parquet(path).iloc[:rows].to_parquet(out)
        else:
            with path.open() as source, out.open("w") as target:
                target.writelines(line for _, line in zip(range(rows + 1), source))
    return out


class Marks:
    """The progress callback: only notes perf_counter() at the events that bound the loop and the run's phases."""
    run_started = loop_start = loop_end = run_finished = None

    def __call__(self, event, clock=time.perf_counter) -> None:
        kind = event.kind
        if kind == "done":
            if event.card_type == LAST:
                self.loop_end = clock()
        elif kind == "started":
            if self.loop_start is None and event.card_type == FIRST:
                self.loop_start = clock()
        else:  # run_started, run_finished (and any other, rare, kind)
            setattr(self, kind, clock())


@dataclass
class PipelineRun:
    wall: float    # the whole cardloop.run(...) call
    loop: float    # first prepare-batch started .. last optimizer-step done
    before: float  # call .. run recorded as started: validate + plan, open the store, cache look-ups
    start: float   # run started .. first prepare-batch started: per-card preparation, set-up cards
    end: float     # last optimizer-step done .. run recorded as ended: final snapshot, recorder drain
    result: float  # run ended .. return: building the RunResult
    losses: list[float] = field(repr=False, default_factory=list)


def pipeline_run(pipeline, root: Path, policy: str, threads: int, records: dict | None = None) -> PipelineRun:
    """One timed cardloop.run into a fresh store, with no progress callback: the loop and the phases come
    from the run records (card start times and durations, the run's start and end). With `records`, adds
    to it the recorded run-function seconds per card type."""
    store = Path(tempfile.mkdtemp(prefix=f"store-{policy}-", dir=root))
    t0, c0 = time.time(), time.perf_counter()
    result = cardloop.run(pipeline, store=store, persist=policy, threads=threads)
    wall = time.perf_counter() - c0
    with RunRecords(store / "runs.sqlite") as db:
        record, executions = db.get_run(result.run_id), db.card_executions(result.run_id)
        body = {cards.path: cards for cards in db.iteration_cards(result.run_id)}
    first = next((e for e in executions if e.card_type in (FIRST, LOOP_CARD)), None)
    if body:  # the blocks pipeline: the loop is the batches block's one recorded execution
        run = blocks_run(record, executions, body, t0, wall)
    else:  # unrolled: first prepare-batch .. last optimizer step; the loop card: its run
        last = first if first.card_type == LOOP_CARD else [e for e in executions if e.card_type == LAST][-1]
        loop_end = last.started_at + last.seconds
        run = PipelineRun(wall, loop_end - first.started_at, record.started_at - t0,
                          first.started_at - record.started_at, record.ended_at - loop_end,
                          t0 + wall - record.ended_at, result.metrics("loss_value"))
    if records is not None:
        for execution in executions:
            records[execution.card_type] = records.get(execution.card_type, 0.0) + execution.seconds
    del result
    shutil.rmtree(store, ignore_errors=True)
    return run


def blocks_run(record, executions, body: dict, t0: float, wall: float) -> PipelineRun:
    """The phases of a blocks run. The loop is the `batches` block's recorded seconds: its items (the batch
    views, the hand loop's slices), the five cards and their per-iteration records; the `epochs` block's
    card-execution row also covers the Batch Iterator (its one-time conversion of the frame, which the hand
    loop does before its clock starts) and the epoch's checkpoint, counted here in *start* and *end*."""
    epochs = next(e for e in executions if e.card_type == "loop")
    loop = body[BATCHES_BLOCK].seconds
    loop_start = epochs.started_at + body[ITERATOR].seconds  # the iterator is the only card before the batches
    losses = list(body[LOSSES].arrays()[3]["loss_value"])
    return PipelineRun(wall, loop, record.started_at - t0, loop_start - record.started_at,
                       record.ended_at - (loop_start + loop), t0 + wall - record.ended_at, losses)


# --- measuring
@dataclass
class Row:
    model: str
    threads: int
    policy: str
    steps: int
    shape: str = UNROLLED
    hand_s: list[float] = field(default_factory=list)
    runs: list[PipelineRun] = field(default_factory=list)
    other_cores: list[float | None] = field(default_factory=list)
    hand_setup_s: float = 0.0
    loss_diff: float | None = None

    def rates(self) -> tuple[float, float, float]:  # (hand steps/s, loop steps/s, ratio), each side's best run
        hand, loop = self.steps / min(self.hand_s), self.steps / min(r.loop for r in self.runs)
        return hand, loop, loop / hand


def measure(cases: list[Case], thread_counts: list[int], reps: int, root: Path, noise: Noise, log,
            shapes: tuple[str, ...] = (UNROLLED, LOOPED, BLOCKS)) -> list[Row]:
    """Hand and pipeline runs alternate (hand first on even repetitions); best of `reps` per row."""
    rows: list[Row] = []
    for case in cases:
        X, y = to_tensors(case.path)
        pipelines = {(steps, shape): pipeline_for(case, steps, shape, root) for steps in set(case.steps.values())
                     for shape in shapes}
        for threads in thread_counts:
            torch.set_num_threads(threads)
            hand_loop(X, y, case, 20)  # warm-up: torch kernels, imports, the first store ever opened
            for shape in shapes:
                pipeline_run(pipeline_for(case, 20, shape, root), root, "checkpoint", threads)
            row = [Row(case.label, threads, policy, case.steps[policy]) for policy in ("checkpoint", "all")
                   if UNROLLED in shapes]
            row += [Row(case.label, threads, "checkpoint", case.steps["checkpoint"], shape)
                    for shape in (LOOPED, BLOCKS) if shape in shapes]
            for r in row:
                r.hand_setup_s = min(hand_setup_seconds(case) for _ in range(3))
            for rep in range(reps):
                for r in row:
                    for attempt in range(1 + RETRIES):
                        gc.collect()
                        noise.before()
                        begin, started = cpu_sample(), time.perf_counter()
                        for side in ("hand", "pipe") if rep % 2 == 0 else ("pipe", "hand"):
                            torch.set_num_threads(threads)
                            if side == "hand":
                                hand_s, hand_losses = hand_loop(X, y, case, r.steps)
                            else:
                                run = pipeline_run(pipelines[r.steps, r.shape], root, r.policy, threads)
                        other = other_cores(begin)
                        if attempt == RETRIES or not noise.disturbed(other, time.perf_counter() - started):
                            break
                    r.hand_s.append(hand_s)
                    r.runs.append(run)
                    r.other_cores.append(other)
                    if r.loss_diff is None and len(run.losses) == len(hand_losses):
                        r.loss_diff = max(abs(a - b) for a, b in zip(run.losses, hand_losses))
                    log(f"  {case.name:9s} threads={threads} {r.policy:10s} {r.shape:9s} rep {rep + 1}/{reps}: hand "
                        f"{r.steps / hand_s:7.1f}/s  loop {r.steps / run.loop:7.1f}/s  wall {run.wall:.2f} s  "
                        f"(others {fmt(other, '.2f')} cores)")
            rows.extend(row)
    return rows


def executor_alone(plan, threads: int) -> tuple[float, dict[str, float]]:
    """The planned cards run by LocalExecutor with one listener that notes times: no recorder, no store, no
    events. Returns (loop seconds, run-function seconds per training card type)."""
    marks, bodies = Marks(), dict.fromkeys(TRAINING_CARDS, 0.0)

    def card_done(pc, outputs, started, seconds, clock=time.perf_counter):
        if pc.card.type in bodies:
            bodies[pc.card.type] += seconds
            marks.loop_end = clock()
            if marks.loop_start is None:
                marks.loop_start = started

    torch.set_num_threads(threads)
    LocalExecutor().run(plan, RunHooks([SimpleNamespace(card_done=card_done)]))
    return marks.loop_end - marks.loop_start, bodies


def events_cost(plan) -> float:
    """Seconds per step that turning hook calls into CardEvents for the Marks callback costs: EventForwarder
    driven directly with the plan's training cards (best of 5). The measuring's own share of the loop time."""
    cards = [pc for pc in plan.cards if pc.card.type in TRAINING_CARDS]
    forwarder, outputs, best = EventForwarder(Marks()), {"loss_value": 0.5}, float("inf")
    forwarder.run_started(plan, "bench")
    for _ in range(5):
        started = time.perf_counter()
        for pc in cards:
            forwarder.card_started(pc)
            forwarder.card_done(pc, outputs, 0.0, 0.0)
        best = min(best, time.perf_counter() - started)
    return best * len(TRAINING_CARDS) / len(cards)


def hand_parts(X: torch.Tensor, y: torch.Tensor, case: Case, steps: int) -> dict[str, float]:
    """The hand loop with a clock read between its parts; seconds per part, named after the card doing it."""
    model = make_model(case)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    clock, parts = time.perf_counter, dict.fromkeys(TRAINING_CARDS, 0.0)
    for i in range(steps):
        t0 = clock()
        xb, yb = X[i * BATCH_SIZE:(i + 1) * BATCH_SIZE], y[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
        t1 = clock()
        opt.zero_grad()
        t2 = clock()
        predictions = model(xb)
        t3 = clock()
        (loss := F.mse_loss(predictions, yb)).item()
        t4 = clock()
        loss.backward()
        t5 = clock()
        opt.step()
        for card, start, end in zip(TRAINING_CARDS, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, clock())):
            parts[card] += end - start
    return parts


def breakdown(case: Case, threads: int, root: Path, noise: Noise, reps: int) -> list[tuple]:
    """Where a step's time goes with the default policy: rows of (what, hand loop, executor alone, in
    cardloop.run), in µs per step; each column from its best of `reps` runs."""
    steps = case.steps["checkpoint"]
    X, y = to_tensors(case.path)
    pipeline = pipeline_for(case, steps)
    plan = plan_pipeline(pipeline)
    hand, loader, alone, pipe = [], [], [], []
    for _ in range(reps):
        gc.collect()
        noise.before()
        torch.set_num_threads(threads)
        hand.append((hand_loop(X, y, case, steps)[0], hand_parts(X, y, case, steps)))
        loader.append(hand_loop(X, y, case, steps, loader=True)[0])
        alone.append(executor_alone(plan, threads))
        bodies: dict[str, float] = {}
        pipe.append((pipeline_run(pipeline, root, "checkpoint", threads, records=bodies).loop, bodies))
    best = [min(runs, key=lambda r: r[0]) for runs in (hand, alone, pipe)]
    us = 1e6 / steps
    rows = [(card, *(parts[card] * us for _, parts in best)) for card in TRAINING_CARDS]
    return rows + [("the six together", *(sum(parts[c] for c in TRAINING_CARDS) * us for _, parts in best)),
                   ("loop (without per-part clocks)", *(loop * us for loop, _ in best)),
                   ("progress events, when a callback listens (not in the runs above)", None, None,
                    events_cost(plan) * 1e6),
                   ("hand loop with a DataLoader instead of slices", min(loader) * us, None, None)]


# --- reporting
def fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               platform.processor() or "unknown")
    git = ["git", "--no-optional-locks", "-C", str(Path(cardloop.__file__).resolve().parents[2])]  # read-only
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "default_threads": torch.get_num_threads(), "python": platform.python_version(),
            "cardloop": f"{cardloop.__version__}, commit {head or 'unknown'}"
                        + (" + uncommitted changes in src/" if dirty.strip() else ""),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def report(rows: list[Row], parts: list[tuple], m: dict, reps: int) -> str:
    lines = [f"machine: {m['cpu']}, {m['cores']} cores; torch {m['torch']} (default threads {m['default_threads']}); "
             f"python {m['python']}; cardloop {m['cardloop']}",
             f"date: {m['date']}; load average at start {m['load']}",
             f"best of {reps} alternated hand/pipeline pairs per row; batch {BATCH_SIZE}; Adam lr {LEARNING_RATE}",
             "", "Throughput (loop: first prepare-batch started .. last optimizer-step done; loop card: its run; "
             "blocks: the batches block's run):", "",
             "| model | threads | pipeline | policy | steps | hand steps/s | loop steps/s | ratio | median pair "
             "| per-pair ratios | other procs (cores) |", "|---|---:|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        ratios = [h / p.loop for h, p in zip(r.hand_s, r.runs)]
        others = max((o for o in r.other_cores if o is not None), default=None)
        hand, loop, ratio = r.rates()
        lines.append(f"| {r.model} | {r.threads} | {r.shape} | {r.policy} | {r.steps} | {hand:.1f} | {loop:.1f} | "
                     f"**{ratio:.3f}** | {statistics.median(ratios):.3f} | {', '.join(f'{x:.3f}' for x in ratios)} | "
                     f"{fmt(others, '.2f')} |")
    for shape, goal in GOALS.items():
        checked = [r for r in rows if r.policy == "checkpoint" and r.shape == shape]
        if checked:
            worst = min(r.rates()[2] for r in checked)
            median = min(statistics.median(h / p.loop for h, p in zip(r.hand_s, r.runs)) for r in checked)
            lines += ["", f"Goal (ratio >= {goal} with 'checkpoint'), {shape}: "
                          f"{'met' if worst >= goal else 'NOT met'}; lowest ratio {worst:.3f}, lowest median pair "
                          f"{median:.3f}."]
    lines += ["", "Whole runs (the pipeline run with the lowest wall time; fixed = wall - loop; whole-run ratio = "
                  "(hand set-up + best hand loop) / wall; ms unless marked):",
              "", "| model | threads | pipeline | policy | wall s | wall steps/s | whole-run ratio | fixed "
              "| plan + store | start | end | result | hand set-up | max abs loss diff |",
              "|---|---:|---|---|---:|---:|---:|" + "---:|" * 7]
    for r in rows:
        b = min(r.runs, key=lambda p: p.wall)
        whole = (r.hand_setup_s + min(r.hand_s)) / b.wall
        lines.append(f"| {r.model} | {r.threads} | {r.shape} | {r.policy} | {b.wall:.2f} | {r.steps / b.wall:.1f} | "
                     f"{whole:.3f} | "
                     + " | ".join(f"{x * 1e3:.0f}" for x in (b.wall - b.loop, b.before, b.start, b.end, b.result,
                                                            r.hand_setup_s)) + f" | {fmt(r.loss_diff, '.1e')} |")
    if parts:
        lines += ["", f"Where a step goes (threads={parts[0][1]}, checkpoint; µs per step, each column the best of "
                      f"{reps} runs; card rows: the run function's recorded time, or the hand loop's same part; "
                      "alone = LocalExecutor with one timing listener, no recorder, store or events):", "",
                  "| µs per step | " + " | ".join(f"{c.name}: hand | alone | in run" for c, _, _ in parts) + " |",
                  "|---|" + "---:|" * 3 * len(parts)]
        for i, (what, *_) in enumerate(parts[0][2]):
            lines.append(f"| {what} | " + " | ".join(fmt(x) for _, _, rows in parts for x in rows[i][1:]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps, one repetition: a smoke check")
    parser.add_argument("--reps", type=int, help="pairs per row; the best counts (default 3, quick 1)")
    parser.add_argument("--quiet-wait", type=float, help="before each pair, wait up to this many seconds for "
                                                         "other processes to leave the CPU (default 10, quick 0)")
    parser.add_argument("--shapes", default="unrolled,loop-card,blocks",
                        help="the pipeline shapes to measure, comma-separated (default: all three); the 'where a "
                             "step goes' table needs unrolled")
    args = parser.parse_args(argv)
    shapes = tuple(name.replace("-", " ") for name in args.shapes.split(","))
    if any(shape not in GOALS for shape in shapes):
        parser.error(f"--shapes takes unrolled, loop-card and blocks, not {args.shapes!r}")
    reps = args.reps or (1 if args.quick else 3)
    machine = machine_info()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    noise = Noise(args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 10.0), log)
    root = Path(tempfile.mkdtemp(prefix="cardloop-bench-"))
    try:
        started = time.perf_counter()
        log(f"writing data to {root} ...")
        quick = {"checkpoint": 100, "all": 20}
        cases = [  # diabetes: 66,300 rows = 2,072 batches; synthetic: 3,125 batches
            Case("diabetes", "diabetes 10-64-64-1", write_diabetes(root, copies=150), 10, (64, 64),
                 quick if args.quick else {"checkpoint": 2000, "all": 50}),
            Case("synthetic", "synthetic 32-256-256-1", write_synthetic(root, rows=100_000), 32, (256, 256),
                 quick if args.quick else {"checkpoint": 1000, "all": 50}),
        ]
        rows = measure(cases, sorted({1, machine["default_threads"]}), reps, root, noise, log, shapes)
        parts = []
        if UNROLLED in shapes:
            log("where the time goes ...")
            parts = [(case, 1, breakdown(case, 1, root, noise, reps)) for case in cases]
        print(report(rows, parts, machine, reps))
        log(f"total {time.perf_counter() - started:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
