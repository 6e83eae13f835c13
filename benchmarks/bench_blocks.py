"""Loop blocks at scale: a tiny model trained for 100 epochs of 1,000 batches (500,000 body-card executions) as
loop blocks, with the default persist policy.

    .venv/bin/python benchmarks/bench_blocks.py [--quick] [--epochs N] [--batches N] [--reps N] [--cli-src DIR]

Measures (a) loading, validating and planning the pipeline (goal < 1 s), (b) the run's resident memory, sampled
through the run (goal: flat), (c) the run records' bytes per card execution (goal <= 100 bytes), (d) `cardloop
show RUN` on that run, a fresh process (goal < 1 s). --quick: 5 epochs of 100 batches. See benchmarks/README.md.
Changes nothing in cardloop.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_data import write_synthetic
from quiet import Noise, cpu_sample, other_cores

import cardloop
from cardloop.engine.blocks import body_plan
from cardloop.engine.plan import plan_pipeline
from cardloop.examples import loop_blocks
from cardloop.pipeline.blocks import BlockType
from cardloop.pipeline.fileformat import load_pipeline
from cardloop.store.records import RunRecords

BATCH_SIZE, FEATURES, LAYERS = 8, 4, (8,)  # a tiny model: 4 features, one hidden layer of 8
TEST_FRACTION = 0.2  # loop_blocks' split: the training rows are exactly batches * BATCH_SIZE


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident set (or `VmHWM`: its peak so far), in KiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class RssSampler(threading.Thread):
    """Samples the resident set every `every` seconds while the run goes on (a listener would make the blocks
    send every body card's events, which a run without a progress callback does not)."""

    def __init__(self, every: float = 0.2):
        super().__init__(daemon=True)
        self.every, self.samples, self.done = every, [], threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.done.wait(self.every):
            self.samples.append((time.perf_counter() - started, rss_kib()))

    def stop(self) -> list[tuple[float, int]]:
        self.done.set()
        self.join()
        return self.samples


def pipeline_for(data: Path, epochs: int, name: str) -> cardloop.Pipeline:
    """The guide's loop as blocks: split and standardize, then `epochs` shuffled epochs over the Batch Iterator,
    validation after each; no early stopping (every epoch runs)."""
    return loop_blocks(path=str(data), epochs=epochs, batch_size=BATCH_SIZE, input_dim=FEATURES, layers=LAYERS,
                       shuffle=True, prepare=True, patience=None, name=name)


def plan_seconds(file: Path, reps: int) -> dict[str, float]:
    """Best of `reps`: loading the pipeline file, validating and planning it (`plan_pipeline`, as a run does),
    and planning the block bodies (done once per run, when each block first runs)."""
    best = {"load": float("inf"), "validate + plan": float("inf"), "bodies": float("inf")}
    for _ in range(reps):
        t0 = time.perf_counter()
        pipeline = load_pipeline(file)
        t1 = time.perf_counter()
        plan = plan_pipeline(pipeline)
        t2 = time.perf_counter()
        bodies = [pc.card_type.spec for pc in plan.cards if isinstance(pc.card_type, BlockType)]
        while bodies:
            spec = bodies.pop()
            bodies += [pc.card_type.spec for pc in body_plan(spec).cards if isinstance(pc.card_type, BlockType)]
        t3 = time.perf_counter()
        for what, seconds in zip(best, (t1 - t0, t2 - t1, t3 - t2)):
            best[what] = min(best[what], seconds)
    return best


def record_sizes(store: Path, run_id: str) -> dict[str, int]:
    """Bytes of the run records: the database files, and the content of the rows of each table of this run."""
    files = sum(p.stat().st_size for p in store.glob("runs.sqlite*"))
    with sqlite3.connect(store / "runs.sqlite") as db:
        def content(table: str) -> int:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            total = " + ".join(f'coalesce(length("{c}"), 0)' for c in columns)
            return db.execute(f"SELECT coalesce(sum({total}), 0) FROM {table} WHERE run_id = ?",
                              (run_id,)).fetchone()[0]

        tables = {table: content(table) for table in ("runs", "card_executions", "metrics", "artifacts",
                                                      "state_snapshots", "card_progress", "iteration_cards")}
        pages = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    return {"files": files, "pages": pages, **tables}


def executions_of(store: Path, run_id: str) -> tuple[int, int]:
    """(top-level card executions, body-card executions) recorded for the run."""
    with RunRecords(store / "runs.sqlite") as db:
        top = len(db.card_executions(run_id))
        body = sum(cards.executions for cards in db.iteration_cards(run_id))
    return top, body


def show_seconds(store: Path, run_id: str, reps: int, src: Path | None = None) -> dict[str, float]:
    """Median wall seconds of a fresh `python -m cardloop.cli ...` process (after one warm-up), for `runs`
    (the start-up and one query) and `show RUN`; and how many lines `show RUN` printed. `src`: run the CLI of
    the cardloop in that folder (another checkout's src/) instead of this one."""
    env = {**os.environ, "COLUMNS": "160", **({"PYTHONPATH": str(src)} if src is not None else {})}
    result = {}
    for name, command in (("runs", ["runs"]), ("show RUN", ["show", run_id])):
        argv = [sys.executable, "-m", "cardloop.cli", *command, "--store", str(store)]
        times = []
        for attempt in range(reps + 1):
            started = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
            if attempt:
                times.append(time.perf_counter() - started)
        result[name] = statistics.median(times)
        result[name + " lines"] = len(done.stdout.splitlines())
    return result


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               platform.processor() or "unknown")
    import torch

    git = ["git", "--no-optional-locks", "-C", str(Path(cardloop.__file__).resolve().parents[2])]
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return (f"machine: {cpu}, {os.cpu_count()} cores; torch {torch.__version__}; python "
            f"{platform.python_version()}; cardloop commit {head or 'unknown'}\n"
            f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; load average at start "
            + " ".join(f"{x:.2f}" for x in os.getloadavg()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 epochs of 100 batches: a smoke check")
    parser.add_argument("--epochs", type=int, help="epochs (default 100, quick 5)")
    parser.add_argument("--batches", type=int, help="batches per epoch (default 1000, quick 100)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the planning and CLI timings")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the run (default 1)")
    parser.add_argument("--cli-src", type=Path, help="also time the CLI of the cardloop in this src/ folder "
                                                      "(another checkout) on the same store")
    parser.add_argument("--dir", type=Path, help="folder for the data and the store (default: a temporary one)")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="wait up to this many seconds for other processes to leave the CPU before the run "
                             "(default 30, quick 0)")
    args = parser.parse_args(argv)
    epochs = args.epochs or (5 if args.quick else 100)
    batches = args.batches or (100 if args.quick else 1000)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    root = Path(tempfile.mkdtemp(prefix="cardloop-bench-blocks-", dir=args.dir))
    try:
        header = machine()
        rows = round(batches * BATCH_SIZE / (1 - TEST_FRACTION))
        data = write_synthetic(root, rows=rows, features=FEATURES)
        pipeline = pipeline_for(data, epochs, f"bench-blocks-{epochs}x{batches}")
        file = pipeline.save(root / "blocks.yaml")
        log(f"{len(pipeline.cards)} top-level cards; planning ...")
        planning = plan_seconds(file, args.reps)

        log("warm-up: 1 epoch of 10 batches (the imports and first-use costs of a process) ...")
        warm = write_synthetic(root, rows=round(10 * BATCH_SIZE / (1 - TEST_FRACTION)), features=FEATURES)
        cardloop.run(pipeline_for(warm, 1, "bench-blocks-warm-up"), store=root / "warm-up", threads=args.threads)
        noise = Noise(args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 30.0), log)
        noise.before()
        store = root / "store"
        log(f"running {epochs} epochs x {batches} batches ...")
        rss_before, sampler, begin = rss_kib(), RssSampler(), cpu_sample()
        sampler.start()
        started = time.perf_counter()
        result = cardloop.run(file, store=store, threads=args.threads)
        wall = time.perf_counter() - started
        samples, others, peak = sampler.stop(), other_cores(begin), rss_kib("VmHWM")
        run_id = result.run_id
        with RunRecords(store / "runs.sqlite") as db:
            epochs_row = next(e for e in db.card_executions(run_id) if e.card_id == "epochs")
        del result
        top, body = executions_of(store, run_id)
        sizes = record_sizes(store, run_id)
        artifacts = sum(p.stat().st_size for p in (store / "artifacts").rglob("*") if p.is_file())
        log("timing the CLI ...")
        cli = show_seconds(store, run_id, args.reps)
        other = show_seconds(store, run_id, args.reps, args.cli_src) if args.cli_src else None
        executions = top + body

        rss = [kib for _, kib in samples] or [rss_kib()]
        tenth = max(1, len(rss) // 10)
        mib = lambda kib: f"{kib / 1024:.1f}"  # noqa: E731
        per = lambda n: f"{n / executions:.1f}"  # noqa: E731
        lines = [header, "", f"pipeline: {len(pipeline.cards)} top-level cards; {epochs} epochs x {batches} batches of "
                             f"{BATCH_SIZE} (model {FEATURES}-{'-'.join(map(str, LAYERS))}-1, Adam), shuffled, "
                             f"validation every epoch; persist 'checkpoint'; {args.threads} torch thread(s)",
                 f"card executions recorded: {executions:,} ({top} top-level, {body:,} in block bodies)",
                 f"run: wall {wall:.1f} s ({wall / epochs:.2f} s per epoch; the epochs block "
                 f"{epochs_row.seconds:.1f} s, {epochs_row.seconds / (epochs * batches) * 1e6:.0f} µs per batch); "
                 f"other processes {'n/a' if others is None else f'{others:.2f}'} cores on average", "",
                 "| measure | figure | goal |", "|---|---:|---|",
                 f"| (a) load the file | {planning['load'] * 1e3:.1f} ms | |",
                 f"| (a) validate + plan (`plan_pipeline`) | {planning['validate + plan'] * 1e3:.1f} ms | < 1 s |",
                 f"| (a) plan the block bodies (at run time) | {planning['bodies'] * 1e3:.1f} ms | |",
                 f"| (b) RSS before the run (after a warm-up run) | {mib(rss_before)} MiB | |",
                 f"| (b) RSS, first / last sample | {mib(rss[0])} / {mib(rss[-1])} MiB | flat |",
                 f"| (b) RSS, max sample ({len(rss)} samples, every {sampler.every} s) | {mib(max(rss))} MiB | flat |",
                 f"| (b) RSS, median of the first / last tenth of the samples | "
                 f"{mib(statistics.median(rss[:tenth]))} / {mib(statistics.median(rss[-tenth:]))} MiB | flat |",
                 f"| (b) peak RSS of the process (VmHWM) | {mib(peak)} MiB | |",
                 f"| (c) runs.sqlite (+ -wal, -shm) | {sizes['files']:,} B = {per(sizes['files'])} B/execution | "
                 "<= 100 |",
                 f"| (c) its pages in use | {sizes['pages']:,} B = {per(sizes['pages'])} B/execution | |",
                 f"| (c) iteration_cards rows' content | {sizes['iteration_cards']:,} B = "
                 f"{per(sizes['iteration_cards'])} B/execution | |",
                 f"| (c) card_progress rows' content ({epochs} epoch checkpoints) | {sizes['card_progress']:,} B = "
                 f"{per(sizes['card_progress'])} B/execution | |",
                 f"| (c) other tables' rows (runs, card_executions, metrics, artifacts, state_snapshots) | "
                 f"{sum(sizes[t] for t in ('runs', 'card_executions', 'metrics', 'artifacts', 'state_snapshots')):,} B"
                 " | |",
                 f"| artifact files (the checkpoints' model and optimizer; not run records) | {artifacts:,} B | |",
                 f"| (d) `cardloop show RUN`, fresh process, median of {args.reps} | {cli['show RUN']:.3f} s "
                 f"({cli['show RUN lines']} lines) | < 1 s |",
                 f"| (d) `cardloop runs` (start-up + one query), same | {cli['runs']:.3f} s | |"]
        if other is not None:
            lines += [f"| (d) `cardloop show RUN` of {args.cli_src}, same | {other['show RUN']:.3f} s "
                      f"({other['show RUN lines']} lines) | < 1 s |",
                      f"| (d) `cardloop runs` of {args.cli_src}, same | {other['runs']:.3f} s | |"]
        print("\n".join(lines))
        log("RSS samples (s, MiB): " + ", ".join(f"{t:.0f}:{kib / 1024:.0f}" for t, kib in samples[::max(1, len(
            samples) // 20)]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
