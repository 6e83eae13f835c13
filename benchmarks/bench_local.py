"""Hand-written PyTorch training loop vs. the same loop as a card pipeline on the local executor.

    .venv/bin/python benchmarks/bench_local.py            # full run (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_local.py --quick    # smoke check (well under a minute)
    .venv/bin/python benchmarks/bench_local.py --profile  # also cProfile one pipeline run (main + recorder thread)

Everything runs in one process, hand loop and pipeline alternating, so both see the same machine state.
See benchmarks/README.md for what each figure includes. Only measures; changes nothing in cardloop.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

import cardloop
from cardloop.datasets import DATASETS_DIR
from cardloop.examples import basic_training_loop

BATCH_SIZE = 32
LEARNING_RATE = 1e-3
SEED = 0
# The cards of basic_training_loop (prepare=False) that are not per-step training work.
SETUP_CARDS = ("data", "model", "opt")


# --- data --------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One model on one data file; `steps[policy]` is how many batches each timed run trains."""

    name: str
    label: str
    path: Path
    input_dim: int
    layers: tuple[int, ...]
    rows: int
    steps: dict[str, int]


def standardize(frame: pd.DataFrame) -> pd.DataFrame:
    return (frame - frame.mean()) / frame.std(ddof=0)


def write_diabetes(directory: Path, copies: int) -> tuple[Path, int]:
    """The packaged diabetes data, every column (features and target) standardized, repeated `copies` times."""
    frame = standardize(pd.read_csv(DATASETS_DIR / "diabetes.csv").astype("float64"))
    frame = pd.concat([frame] * copies, ignore_index=True)
    path = directory / f"diabetes_std_x{copies}.csv"
    frame.to_csv(path, index=False)
    return path, len(frame)


def write_synthetic(directory: Path, rows: int, features: int = 32) -> tuple[Path, int]:
    """Seeded synthetic regression data: N(0,1) features, a smooth nonlinear target, all standardized."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((rows, features))
    w1, w2 = rng.standard_normal(features), rng.standard_normal(features)
    y = np.sin(X @ w1 / np.sqrt(features)) + 0.5 * (X @ w2) / np.sqrt(features) + 0.1 * rng.standard_normal(rows)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(features)])
    frame["target"] = y
    frame = standardize(frame)
    try:
        import pyarrow  # noqa: F401

        path = directory / f"synthetic_{rows}.parquet"
        frame.to_parquet(path, index=False)
    except ImportError:
        path = directory / f"synthetic_{rows}.csv"
        frame.to_csv(path, index=False)
    return path, len(frame)


def read_frame(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def to_tensors(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (all columns but the last) and target (the last) as float32, as the prepare-batch card does."""
    X = torch.from_numpy(frame.iloc[:, :-1].to_numpy(dtype=np.float32, copy=True))
    y = torch.from_numpy(frame.iloc[:, -1:].to_numpy(dtype=np.float32, copy=True))
    return X, y


# --- the hand-written loop ---------------------------------------------------------------------------


def make_model(input_dim: int, layers: tuple[int, ...]) -> nn.Sequential:
    """The same MLP model_define builds (Linear, ReLU per hidden layer, then Linear), seeded the same way."""
    torch.manual_seed(SEED)
    modules: list[nn.Module] = []
    width = input_dim
    for hidden in layers:
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, 1))
    return nn.Sequential(*modules)


def hand_loop(X: torch.Tensor, y: torch.Tensor, case: Case, steps: int, extras: bool = False) -> tuple[float, list]:
    """Train `steps` batches; returns (seconds of the loop alone, losses).

    Model and optimizer are built before the clock starts; tensors were converted before the call.
    `loss.item()` is called every step, as the loss card does. With `extras`, each step also does the
    extra work the training cards do beyond the plain loop (the backward card's second loss.item() and
    global gradient norm, the optimizer-step card's check that the optimizer holds the model's parameters).
    """
    model = make_model(case.input_dim, case.layers)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    losses = []
    started = time.perf_counter()
    for i in range(steps):
        xb, yb = X[i * BATCH_SIZE:(i + 1) * BATCH_SIZE], y[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
        opt.zero_grad()
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        if extras:
            loss.item()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item()
            ids = {id(p) for p in model.parameters()}
            assert all(id(p) in ids for g in opt.param_groups for p in g["params"])
        opt.step()
        losses.append(loss.item())
    return time.perf_counter() - started, losses


def hand_end_to_end(case: Case, steps: int) -> float:
    """Seconds of read file + tensor conversion + model + optimizer + loop: what cardloop.run's wall covers."""
    started = time.perf_counter()
    X, y = to_tensors(read_frame(case.path))
    hand_loop(X, y, case, steps)
    return time.perf_counter() - started


# --- the pipeline ------------------------------------------------------------------------------------


def pipeline_for(case: Case, steps: int):
    return basic_training_loop(path=str(case.path), prepare=False, input_dim=case.input_dim, layers=case.layers,
                               batches=steps, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
                               name=f"bench-{case.name}-{steps}")


def setup_card_seconds(store: Path, run_id: str) -> float | None:
    """Seconds the engine recorded for the non-training cards (data_load, model_define, init_optimizer)."""
    try:
        from cardloop.store.records import RunRecords

        records = RunRecords(store / "runs.sqlite")
        try:
            total = 0.0
            for card_id in SETUP_CARDS:
                execution = records.card_execution(run_id, card_id)
                if execution is None:
                    return None
                total += execution.seconds
            return total
        finally:
            records.close()
    except Exception:  # the records API moved; the figure is then reported as missing
        return None


def card_body_seconds(store: Path, run_id: str) -> dict[str, float] | None:
    """Recorded seconds of the training cards' run functions, summed per card type."""
    try:
        from cardloop.store.records import RunRecords

        records = RunRecords(store / "runs.sqlite")
        try:
            totals: dict[str, float] = {}
            for execution in records.card_executions(run_id):
                if execution.card_id not in SETUP_CARDS:
                    totals[execution.card_type] = totals.get(execution.card_type, 0.0) + execution.seconds
            return totals
        finally:
            records.close()
    except Exception:
        return None


@dataclass
class PipelineRun:
    wall: float          # cardloop.run(...) as called: plan + store + every card + recorder drain
    run_seconds: float   # RunResult.seconds: from the first run hook to the end (no planning, no store opening)
    setup: float | None  # recorded seconds of data_load + model_define + init_optimizer
    losses: list
    bodies: dict[str, float] | None = None
    artifacts: list[tuple[str, int]] | None = None

    @property
    def train_seconds(self) -> float | None:
        return None if self.setup is None else self.run_seconds - self.setup


def pipeline_run(pipeline, root: Path, policy: str, threads: int, want_bodies: bool = False) -> PipelineRun:
    store = Path(tempfile.mkdtemp(prefix=f"store-{policy}-", dir=root))
    started = time.perf_counter()
    result = cardloop.run(pipeline, store=store, persist=policy, threads=threads)
    wall = time.perf_counter() - started
    run = PipelineRun(wall, result.seconds, setup_card_seconds(store, result.run_id), result.metrics("loss_value"),
                      card_body_seconds(store, result.run_id) if want_bodies else None,
                      artifact_counts(store, result.run_id) if want_bodies else None)
    del result
    shutil.rmtree(store, ignore_errors=True)
    return run


# --- measuring ---------------------------------------------------------------------------------------


@dataclass
class Pair:
    hand_seconds: float
    pipe: PipelineRun
    steps: int
    other_load: float | None = None  # cores used by other processes while this pair ran

    @property
    def ratio(self) -> float | None:
        train = self.pipe.train_seconds
        return None if train is None else self.hand_seconds / train


@dataclass
class Result:
    case: Case
    threads: int
    policy: str
    steps: int
    pairs: list[Pair] = field(default_factory=list)
    extras_seconds: list[float] = field(default_factory=list)  # hand loop + the cards' extra work
    hand_e2e: list[float] = field(default_factory=list)
    bare_seconds: list[float] = field(default_factory=list)  # executor alone: no recorder, no store
    loss_diff: float | None = None

    def hand_rate(self) -> float:
        return self.steps / min(p.hand_seconds for p in self.pairs)

    def pipe_rate(self) -> float | None:
        trains = [p.pipe.train_seconds for p in self.pairs if p.pipe.train_seconds is not None]
        return self.steps / min(trains) if trains else None

    def ratio(self) -> float | None:
        rate = self.pipe_rate()
        return None if rate is None else rate / self.hand_rate()

    def pair_ratios(self) -> list[float]:
        return [p.ratio for p in self.pairs if p.ratio is not None]

    def max_other_load(self) -> float | None:
        loads = [p.other_load for p in self.pairs if p.other_load is not None]
        return max(loads) if loads else None

    def wall_rate(self) -> float:
        return self.steps / min(p.pipe.wall for p in self.pairs)

    def e2e_ratio(self) -> float | None:
        return min(self.hand_e2e) / min(p.pipe.wall for p in self.pairs) if self.hand_e2e else None


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class OtherLoad:
    """CPU used by other processes (in cores) between start() and stop(): machine busy time from /proc/stat
    minus this process's own CPU time. Near 0 means the measurement had the machine to itself."""

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle and iowait
        own = os.times()
        return busy / CLOCK_TICKS, own.user + own.system, time.perf_counter()

    def start(self) -> "OtherLoad":
        self.begin = self._sample()
        return self

    def stop(self) -> float | None:
        end = self._sample()
        if self.begin is None or end is None or end[2] <= self.begin[2]:
            return None
        return max(0.0, ((end[0] - self.begin[0]) - (end[1] - self.begin[1])) / (end[2] - self.begin[2]))


RETRIES = 2        # a pair disturbed by other processes is measured again, at most this many times
DISTURBED = 0.3    # cores used by other processes during a pair that count as a disturbance


def wait_quiet(limit_s: float, log, threshold: float = 0.25) -> float | None:
    """Wait (at most `limit_s`) until other processes use under `threshold` cores over a 0.5 s window."""
    deadline = time.perf_counter() + limit_s
    while True:
        probe = OtherLoad().start()
        time.sleep(0.5)
        load = probe.stop()
        if load is None or load < threshold or time.perf_counter() >= deadline:
            return load
        log(f"    (other processes use {load:.2f} cores; waiting for a quieter moment)")
        time.sleep(1.0)


def measure(cases: list[Case], thread_counts: list[int], policies: list[str], reps: int, root: Path,
            log, quiet_wait: float, noise_budget: float = 90.0) -> list[Result]:
    """Alternate hand and pipeline runs. Before each pair, wait (up to `quiet_wait` s) for other processes to
    leave the CPU, and measure a disturbed pair again; at most `noise_budget` s in all go to that."""
    results: list[Result] = []
    noise_spent = 0.0
    for case in cases:
        X, y = to_tensors(read_frame(case.path))
        pipelines = {steps: pipeline_for(case, steps) for steps in set(case.steps.values())}
        for threads in thread_counts:
            set_threads(threads)
            # Warm-up: first calls into torch's kernels, imports, the first store ever opened.
            hand_loop(X, y, case, 20)
            pipeline_run(pipeline_for(case, 20), root, "checkpoint", threads)
            row = [Result(case, threads, policy, case.steps[policy]) for policy in policies]
            for rep in range(reps):
                for result in row:
                    steps, pipeline = result.steps, pipelines[result.steps]
                    set_threads(threads)
                    gc.collect()
                    for attempt in range(1 + RETRIES):
                        if quiet_wait > 0 and noise_spent > noise_budget:
                            log(f"    (spent {noise_spent:.0f} s waiting out other processes; no more waits or re-runs)")
                            quiet_wait = 0.0
                        attempt_started = time.perf_counter()
                        if quiet_wait > 0:
                            wait_quiet(quiet_wait, log)
                        pair_started = time.perf_counter()
                        noise_spent += max(0.0, pair_started - attempt_started - 0.5)  # 0.5 s: the quiet probe
                        probe = OtherLoad().start()
                        # Alternate which side goes first, so slow drift on the machine hits both alike.
                        if rep % 2 == 0:
                            hand_seconds, hand_losses = hand_loop(X, y, case, steps)
                            set_threads(threads)
                            pipe = pipeline_run(pipeline, root, result.policy, threads)
                        else:
                            pipe = pipeline_run(pipeline, root, result.policy, threads)
                            set_threads(threads)
                            hand_seconds, hand_losses = hand_loop(X, y, case, steps)
                        other = probe.stop()
                        if quiet_wait <= 0 or other is None or other < DISTURBED or attempt == RETRIES:
                            break
                        log(f"    (other processes used {other:.2f} cores during the pair; measuring it again)")
                        noise_spent += time.perf_counter() - pair_started
                        set_threads(threads)
                    result.pairs.append(Pair(hand_seconds, pipe, steps, other))
                    if result.loss_diff is None and len(pipe.losses) == len(hand_losses):
                        result.loss_diff = max(abs(a - b) for a, b in zip(pipe.losses, hand_losses))
                    set_threads(threads)
                    result.extras_seconds.append(hand_loop(X, y, case, steps, extras=True)[0])
                    result.hand_e2e.append(hand_end_to_end(case, steps))
                    if result.policy == "checkpoint":
                        bare = executor_only_seconds(pipeline, threads)
                        if bare is not None:
                            result.bare_seconds.append(bare)
                    log(f"  {case.name:9s} threads={threads} {result.policy:10s} rep {rep + 1}/{reps}: "
                        f"hand {steps / hand_seconds:7.1f}/s  pipeline "
                        + (f"{steps / pipe.train_seconds:7.1f}/s" if pipe.train_seconds else "   n/a   ")
                        + f"  (wall {pipe.wall:.2f}s; other processes {fmt(other, '.2f')} cores)")
            results.extend(row)
    return results


def plan_timing(case: Case, batches: int) -> dict:
    """Seconds to build a `batches`-step pipeline object and to plan (validate + plan) it."""
    started = time.perf_counter()
    pipeline = pipeline_for(case, batches)
    built = time.perf_counter()
    out = {"batches": batches, "cards": len(pipeline.cards), "build_s": built - started}
    try:
        from cardloop.engine.plan import plan_pipeline

        plan_pipeline(pipeline)
        out["plan_s"] = time.perf_counter() - built
    except Exception as exc:  # internal API moved
        out["plan_s"] = None
        out["plan_error"] = repr(exc)
    return out


def full_epoch(case: Case, root: Path, threads: int) -> dict:
    """One hand epoch and one pipeline epoch (default policy), wall and training figures."""
    batches = -(-case.rows // BATCH_SIZE)
    X, y = to_tensors(read_frame(case.path))
    set_threads(threads)
    hand_seconds, _ = hand_loop(X, y, case, batches)
    pipeline = pipeline_for(case, batches)
    set_threads(threads)
    pipe = pipeline_run(pipeline, root, "checkpoint", threads)
    return {"batches": batches, "cards": len(pipeline.cards), "threads": threads,
            "hand_steps_per_s": batches / hand_seconds, "pipeline_wall_s": pipe.wall,
            "pipeline_run_s": pipe.run_seconds,
            "pipeline_steps_per_s": batches / pipe.train_seconds if pipe.train_seconds else None}


# --- profiling ---------------------------------------------------------------------------------------


def executor_only_seconds(pipeline, threads: int) -> float | None:
    """Seconds of the training cards when the local executor runs the plan with one listener that only notes
    the time (no recorder, no store, no events): what the cards and the executor loop cost by themselves."""
    try:
        from cardloop.engine.events import RunHooks
        from cardloop.engine.local import LocalExecutor
        from cardloop.engine.plan import plan_pipeline

        plan = plan_pipeline(pipeline)
        timings: dict[str, float] = {}

        class Clock:  # one listener that only notes when the optimizer card ends and the last card ends
            def card_done(self, pc, outputs, started, seconds):
                timings[pc.id] = time.perf_counter()

        set_threads(threads)
        LocalExecutor().run(plan, RunHooks([Clock()]))
        return timings[plan.cards[-1].id] - timings[SETUP_CARDS[-1]]
    except Exception:  # internal API moved
        return None


def artifact_counts(store: Path, run_id: str) -> list[tuple[str, int]]:
    """How many artifacts the run wrote per output port (read from the run records' SQLite file)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{store / 'runs.sqlite'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT port, COUNT(*) FROM artifacts WHERE run_id = ? GROUP BY port "
                              "ORDER BY COUNT(*) DESC", (run_id,)).fetchall()
        return [(str(port), int(count)) for port, count in rows]
    except Exception:
        return []


def profile_run(case: Case, steps: int, policy: str, threads: int, root: Path, top: int,
                quiet_wait: float = 0.0, log=None) -> str:
    """cProfile one pipeline run on the main thread, and the run recorder's writer thread separately."""
    out = io.StringIO()
    X, y = to_tensors(read_frame(case.path))
    pipeline = pipeline_for(case, steps)
    hand_seconds = extras_seconds = bare = float("inf")
    for _ in range(3):  # best of 3 for the three in-memory variants
        if quiet_wait > 0 and log is not None:
            wait_quiet(quiet_wait, log)
        set_threads(threads)
        hand_seconds = min(hand_seconds, hand_loop(X, y, case, steps)[0])
        extras_seconds = min(extras_seconds, hand_loop(X, y, case, steps, extras=True)[0])
        bare_once = executor_only_seconds(pipeline, threads)
        bare = None if bare is None or bare_once is None else min(bare, bare_once)
    drain = []
    try:  # time RunRecorder.run_finished (final snapshot + waiting for the writer thread); measurement only
        from cardloop.engine import recorder as recorder_module

        original_finished = recorder_module.RunRecorder.run_finished

        def timed_finished(self, *a, _original=original_finished, **k):
            t0 = time.perf_counter()
            try:
                return _original(self, *a, **k)
            finally:
                drain.append(time.perf_counter() - t0)

        recorder_module.RunRecorder.run_finished = timed_finished
    except Exception:
        original_finished = None
    set_threads(threads)
    try:
        plain = pipeline_run(pipeline, root, policy, threads, want_bodies=True)
    finally:
        if original_finished is not None:
            recorder_module.RunRecorder.run_finished = original_finished
    print(f"profile case: {case.label}, {steps} steps, threads={threads}, persist={policy}", file=out)
    print("  (hand loop, hand + extras and executor alone: best of 3; the others: one run)", file=out)
    print(f"  hand loop                 {hand_seconds / steps * 1e6:8.1f} us/step", file=out)
    print(f"  hand loop + card extras   {extras_seconds / steps * 1e6:8.1f} us/step", file=out)
    if bare is not None:
        print(f"  executor alone            {bare / steps * 1e6:8.1f} us/step  (the planned cards run by "
              "LocalExecutor with only a timestamp listener: no recorder, no store; training cards only)", file=out)
    if plain.train_seconds:
        print(f"  pipeline (training part)  {plain.train_seconds / steps * 1e6:8.1f} us/step  "
              f"(unprofiled run; wall {plain.wall:.2f}s incl. planning)", file=out)
    if plain.bodies:
        total = sum(plain.bodies.values())
        print(f"  recorded card run-function time, per step (sum {total / steps * 1e6:.1f} us/step):", file=out)
        for card_type, seconds in sorted(plain.bodies.items(), key=lambda kv: -kv[1]):
            print(f"    {card_type:28s} {seconds / steps * 1e6:8.1f} us/step", file=out)
        if plain.train_seconds:
            print(f"  => outside card run functions (executor, hooks, recorder, GIL waits, final drain): "
                  f"{(plain.train_seconds - total) / steps * 1e6:.1f} us/step", file=out)
            if drain:
                print(f"     of which run end (final snapshot + waiting for the recorder's writer thread): "
                      f"{drain[0]:.3f} s = {drain[0] / steps * 1e6:.1f} us/step", file=out)
    if plain.artifacts:
        print("  artifacts the run wrote, by output port (count):", file=out)
        for port, count in plain.artifacts:
            print(f"    {port:28s} {count:6d}  ({count / steps:.2f} per step)", file=out)

    writer_profile = cProfile.Profile()
    patched = None
    try:  # profile the recorder's writer thread too (measurement only: wraps the method in this process)
        from cardloop.engine import recorder as recorder_module

        patched = recorder_module.RunRecorder._write_loop

        def profiled_write_loop(self, _original=patched):
            writer_profile.enable()
            try:
                return _original(self)
            finally:
                writer_profile.disable()

        recorder_module.RunRecorder._write_loop = profiled_write_loop
    except Exception:
        patched = None
    main_profile = cProfile.Profile()
    set_threads(threads)
    store = Path(tempfile.mkdtemp(prefix="store-profile-", dir=root))
    main_profile.enable()
    cardloop.run(pipeline, store=store, persist=policy, threads=threads)
    main_profile.disable()
    if patched is not None:
        recorder_module.RunRecorder._write_loop = patched
    shutil.rmtree(store, ignore_errors=True)

    for title, prof in (("main thread", main_profile), ("recorder writer thread", writer_profile)):
        try:
            stats = pstats.Stats(prof, stream=out)
        except TypeError:  # no data (the writer thread was not captured)
            print(f"\n--- {title}: no profile data", file=out)
            continue
        print(f"\n--- {title}, by own time (cProfile inflates Python-heavy code; compare relatively) ---", file=out)
        stats.sort_stats("tottime").print_stats(top)
        print(f"--- {title}, cardloop functions by cumulative time ---", file=out)
        stats.sort_stats("cumulative").print_stats("cardloop", top)
    return out.getvalue()


# --- reporting ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_revision() -> str:
    """The commit of the checkout cardloop is imported from, '+dirty' when src/ differs (read-only git calls)."""
    import subprocess

    repo = Path(cardloop.__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(repo), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def report(results: list[Result], plans: list[dict], epoch: dict | None, machine: dict, reps: int) -> str:
    lines = [
        f"machine: {machine['cpu']}, {machine['cores']} cores; torch {machine['torch']} "
        f"(default threads {machine['default_threads']}); python {machine['python']}; cardloop {machine['cardloop']}",
        f"date: {machine['date']}; load average at start {machine['load_start']}, at end {machine['load_end']}",
        "other procs = most CPU (in cores) that other processes used during any one hand/pipeline pair of the row "
        "(0 = quiet machine)",
        f"best of {reps} alternated hand/pipeline runs per row; batch size {BATCH_SIZE}; Adam lr {LEARNING_RATE}; "
        "the hand loop calls loss.item() every step, as the loss card does",
        "",
        "| model | threads | policy | steps/run | hand steps/s | pipeline steps/s | ratio | per-pair ratios "
        "| other procs (cores) |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        pairs = ", ".join(f"{x:.3f}" for x in r.pair_ratios())
        lines.append(f"| {r.case.label} | {r.threads} | {r.policy} | {r.steps} | {r.hand_rate():.1f} | "
                     f"{fmt(r.pipe_rate())} | {fmt(r.ratio(), '.3f')} | {pairs} | {fmt(r.max_other_load(), '.2f')} |")
    lines += [
        "",
        "Breakdown (best runs): per-step microseconds; 'extras' = hand loop plus the extra work the cards do "
        "(second loss.item(), global grad norm, optimizer/model check); 'executor alone' = the same planned cards "
        "run by LocalExecutor with no recorder and no store (measured for the checkpoint rows); "
        "wall = whole cardloop.run call.",
        "",
        "| model | threads | policy | hand us/step | hand+extras us/step | executor alone us/step | pipeline us/step "
        "| overhead us/step | pipeline wall s | wall steps/s | end-to-end ratio | max abs loss diff |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        hand_us = 1e6 / r.hand_rate()
        extras_us = min(r.extras_seconds) / r.steps * 1e6
        pipe_rate = r.pipe_rate()
        pipe_us = None if pipe_rate is None else 1e6 / pipe_rate
        overhead = None if pipe_us is None else pipe_us - hand_us
        bare_us = min(r.bare_seconds) / r.steps * 1e6 if r.bare_seconds else None
        lines.append(f"| {r.case.label} | {r.threads} | {r.policy} | {hand_us:.1f} | {extras_us:.1f} | "
                     f"{fmt(bare_us)} | {fmt(pipe_us)} | {fmt(overhead)} | {min(p.pipe.wall for p in r.pairs):.2f} | "
                     f"{r.wall_rate():.1f} | {fmt(r.e2e_ratio(), '.3f')} | {fmt(r.loss_diff, '.2e')} |")
    default_ratios = [r.ratio() for r in results if r.policy == "checkpoint" and r.ratio() is not None]
    if default_ratios:
        worst = min(default_ratios)
        lines += ["", f"Goal (ratio >= 0.95 with the default 'checkpoint' policy): "
                      f"{'met' if worst >= 0.95 else 'NOT met'}; lowest ratio {worst:.3f}."]
    if plans:
        lines += ["", "Planning (pipeline object build, then validate + plan; not part of the step rates):", ""]
        for p in plans:
            lines.append(f"- {p['batches']} batches = {p['cards']} cards: build {p['build_s']:.2f} s, "
                         f"plan {fmt(p.get('plan_s'), '.2f')} s"
                         + (f" ({p['plan_error']})" if p.get("plan_error") else ""))
    if epoch:
        lines += ["", f"Full epoch ({epoch['batches']} batches, {epoch['cards']} cards, threads={epoch['threads']}, "
                      f"checkpoint policy, one run each): hand {epoch['hand_steps_per_s']:.1f} steps/s; pipeline "
                      f"{fmt(epoch['pipeline_steps_per_s'])} steps/s (training part), wall "
                      f"{epoch['pipeline_wall_s']:.2f} s (run {epoch['pipeline_run_s']:.2f} s)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps, one repetition: a smoke check")
    parser.add_argument("--reps", type=int, help="repetitions per row (default 3, quick 1)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one pipeline run")
    parser.add_argument("--profile-steps", type=int, default=300)
    parser.add_argument("--full-epoch", action="store_true",
                        help="also time one whole 3125-batch epoch of the 100k-row case (default policy)")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="before each hand/pipeline pair, wait up to this many seconds for other processes "
                             "to leave the CPU (default 10, quick 0)")
    args = parser.parse_args(argv)

    reps = args.reps or (1 if args.quick else 3)
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads})
    policies = ["checkpoint", "all"]
    machine = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "default_threads": default_threads,
        "python": platform.python_version(),
        "cardloop": f"{getattr(cardloop, '__version__', '?')} ({source_revision()})",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": loadavg(),
    }

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    root = Path(tempfile.mkdtemp(prefix="cardloop-bench-"))
    try:
        started = time.perf_counter()
        log(f"writing data to {root} ...")
        diabetes_path, diabetes_rows = write_diabetes(root, copies=32)
        synthetic_path, synthetic_rows = write_synthetic(root, rows=100_000)
        diabetes_batches = -(-diabetes_rows // BATCH_SIZE)
        if args.quick:
            d_steps, s_steps = {"checkpoint": 50, "all": 20}, {"checkpoint": 50, "all": 10}
        else:
            # "all" snapshots model + optimizer after every state change: far slower, so fewer steps.
            d_steps = {"checkpoint": diabetes_batches, "all": 50}
            s_steps = {"checkpoint": 1000, "all": 50}
        cases = [
            Case("diabetes", "diabetes 10-64-64-1", diabetes_path, 10, (64, 64), diabetes_rows, d_steps),
            Case("synthetic", "synthetic 32-256-256-1", synthetic_path, 32, (256, 256), synthetic_rows, s_steps),
        ]
        synthetic_batches = -(-synthetic_rows // BATCH_SIZE)
        plans = [plan_timing(cases[1], n) for n in ((1000, synthetic_batches) if not args.quick else (100,))]
        quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 10.0)
        results = measure(cases, thread_counts, policies, reps, root, log, quiet_wait)
        epoch = full_epoch(cases[1], root, default_threads) if args.full_epoch else None
        machine["load_end"] = loadavg()
        text = report(results, plans, epoch, machine, reps)
        print(text)
        if args.profile:
            print("\n## Profile\n")
            steps = min(args.profile_steps, 50 if args.quick else args.profile_steps)
            print(profile_run(cases[1], steps, "checkpoint", default_threads, root, top=25,
                              quiet_wait=quiet_wait, log=log))
        log(f"total {time.perf_counter() - started:.0f} s")
        if args.json:
            raw = {"machine": machine, "reps": reps, "plans": plans, "full_epoch": epoch, "rows": [
                {"model": r.case.label, "threads": r.threads, "policy": r.policy, "steps": r.steps,
                 "hand_steps_per_s": r.hand_rate(), "pipeline_steps_per_s": r.pipe_rate(), "ratio": r.ratio(),
                 "pair_ratios": r.pair_ratios(),
                 "median_pair_ratio": statistics.median(r.pair_ratios()) if r.pair_ratios() else None, "pipeline_wall_s": [p.pipe.wall for p in r.pairs],
                 "pipeline_run_s": [p.pipe.run_seconds for p in r.pairs],
                 "pipeline_setup_cards_s": [p.pipe.setup for p in r.pairs],
                 "hand_s": [p.hand_seconds for p in r.pairs], "hand_extras_s": r.extras_seconds,
                 "hand_end_to_end_s": r.hand_e2e, "executor_alone_s": r.bare_seconds, "max_abs_loss_diff": r.loss_diff,
                 "other_processes_cores": [p.other_load for p in r.pairs]} for r in results]}
            args.json.write_text(json.dumps(raw, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
