"""How fast `cardloop show`, `export` and the API answer on a run of a large loop block: 100 epochs x 1,000 batches
of six body cards (600,000 body executions, every tenth optimizer step skipped), beside `cardloop runs`.

    .venv/bin/python benchmarks/bench_show_blocks.py [--reps N] [--epochs N] [--batches N] [--dir DIR]

The run's records are written as a run's recorder writes them (RunRecords.add_iteration_cards, one row per body
card with its arrays), without training 100,000 steps: timings and losses are made up, the layout is the engine's.
Each command runs as a user runs it, a fresh `python -m cardloop.cli ...` process timed from start to exit, the
median of `--reps` runs after one warm-up; the API's views in this process through FastAPI's TestClient.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cardloop.store.records import CardExecution, RunRecords

BATCH_CARDS = [("batch", "training_prepare_batch"), ("zero", "training_zero_grad"), ("fwd", "training_forward"),
               ("loss", "training_loss"), ("back", "training_backward"), ("step", "training_optimizer_step")]


def pipeline(epochs: int, batches: int) -> dict:
    body = [{"id": card, "type": kind} for card, kind in BATCH_CARDS]
    inner = {"id": "batches", "type": "loop", "config": {"times": batches}, "body": {"cards": body}}
    outer = {"id": "epochs", "type": "loop", "config": {"times": epochs}, "body": {"cards": [inner]}}
    return {"version": 1, "name": "big-block", "cards": [{"id": "data", "type": "data_load"}, outer]}


def make_store(store: Path, epochs: int, batches: int) -> str:
    rng = np.random.default_rng(0)
    with RunRecords(store / "runs.sqlite") as records:
        run_id = records.start_run(name="big-block", pipeline=pipeline(epochs, batches), persist="checkpoint")
        now = time.time()
        records.add_card_executions([
            CardExecution(run_id, "data", 0, "data_load", "done", now, 0.01),
            CardExecution(run_id, "epochs", 1, "loop", "done", now, 60.0,
                          outputs={"model": {"kind": "model", "digest": None, "state": "model.model"}})])
        n = epochs * batches
        grid = np.stack(np.meshgrid(np.arange(epochs), np.arange(batches), indexing="ij"), -1).reshape(n, 2)
        rows = []
        for card, kind in BATCH_CARDS:
            status = np.ones(n, dtype=np.uint8)
            if card == "step":
                status[::10] = 0
            times = np.where(status == 1, rng.uniform(1e-5, 1e-4, n), 0).astype(np.float32)
            metrics = ["loss_value"] if card == "loss" else []
            values = (1 / (1 + grid[:, 0] + grid[:, 1] / batches) + rng.normal(0, 0.01, n)) if metrics else np.empty(0)
            rows.append((run_id, f"epochs.batches.{card}", kind, 2, n, int(n - status.sum()), float(times.sum()),
                         status.tobytes(), times.tobytes(), grid.astype(np.int64).tobytes(), json.dumps(metrics),
                         values.astype(np.float64).tobytes()))
        outer = np.arange(epochs, dtype=np.int64)
        rows.append((run_id, "epochs.batches", "loop", 1, epochs, 0, 59.0, np.ones(epochs, np.uint8).tobytes(),
                     np.full(epochs, 0.59, np.float32).tobytes(), outer.tobytes(), "[]", b""))
        records.add_iteration_cards(rows)
        records.finish_run(run_id, "succeeded")
    return run_id


def timed(command: list[str]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of the process: less disturbed by a busy machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        store = Path(scratch) / "store"
        run_id = make_store(store, args.epochs, args.batches)
        cli = [sys.executable, "-m", "cardloop.cli"]
        middle = f"epochs[{args.epochs // 2}].batches[{args.batches // 2}].loss"
        commands = {
            "runs": [*cli, "runs", "--store", str(store)],
            "show RUN": [*cli, "show", run_id, "--store", str(store)],
            "show RUN epochs.batches.loss": [*cli, "show", run_id, "epochs.batches.loss", "--store", str(store)],
            f"show RUN {middle}": [*cli, "show", run_id, middle, "--store", str(store)],
            "export RUN epochs DIR": [*cli, "export", run_id, "epochs", str(Path(scratch) / "csv"), "--store",
                                      str(store)],
        }
        walls, cpus = {}, {}
        for name, command in commands.items():
            timed(command)
            found = [timed(command) for _ in range(args.reps)]
            walls[name] = statistics.median(wall for wall, _ in found)
            cpus[name] = statistics.median(cpu for _, cpu in found)
            print(f"{name:<48} wall {walls[name]:6.3f} s ({walls[name] - walls['runs']:+.3f} s beyond runs), "
                  f"CPU {cpus[name]:6.3f} s ({cpus[name] - cpus['runs']:+.3f} s)", flush=True)
        from fastapi.testclient import TestClient

        from cardloop.server.app import create_app

        client = TestClient(create_app(store, Path(scratch) / "pipelines", Path(scratch)), base_url="http://127.0.0.1")
        for url in (f"/api/runs/{run_id}/cards/epochs.batches.loss", f"/api/runs/{run_id}/metrics"):
            times = []
            for _ in range(args.reps + 1):
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:500]
            print(f"GET {url.split(run_id)[1]:<40} first {times[0]:.3f} s, then {statistics.median(times[1:]):.3f} s "
                  f"({len(response.content):,} bytes)", flush=True)


if __name__ == "__main__":
    main()
