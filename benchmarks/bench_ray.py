"""Per-card overhead of the Ray executor, against the local and process executors, side by side in one run, on the
guide's loop unrolled (six cards a step) and as loop blocks (the steps inside one block card).

    .venv/bin/python benchmarks/bench_ray.py [--steps 25 50] [--reps 3] [--threads 1] [--json PATH]

Needs the `ray` extra. Starts a Ray on this machine (temp files and $HOME/.ray in a temporary folder). The Ray
executor's actor and the process executor's worker are started by a first run and stay warm. A run's wall time is
a fixed part (planning, recording) plus a cost per step: the per-step cost is the slope between two run lengths,
(T(long) − T(short)) / (steps(long) − steps(short)), the best of `--reps` runs each, and the overhead is that slope
minus the local executor's, per step and per training card (six a step: prepare batch, zero grad, forward, loss,
backward, optimizer step).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from bench_data import write_synthetic

import cardloop
from cardloop.examples import basic_training_loop, loop_blocks

BATCH_SIZE = 32
CARDS_PER_STEP = 6
EXECUTORS = ("local", "process", "ray")
SHAPES = ("unrolled", "blocks")


def pipeline(folder: Path, steps: int, shape: str):
    """The loop over `steps` batches of synthetic data (32 features, MLP 32-64-64-1), unrolled or as blocks."""
    data = write_synthetic(folder, steps * BATCH_SIZE)
    common = dict(path=str(data), prepare=False, input_dim=32, layers=(64, 64), batch_size=BATCH_SIZE,
                  name=f"bench-ray-{shape}-{steps}")
    if shape == "blocks":
        return loop_blocks(epochs=1, shuffle=False, patience=None, **common)
    return basic_training_loop(batches=steps, **common)


def best_seconds(executor: str, pipe, store: Path, reps: int, threads: int) -> float:
    """The fastest of `reps` runs of every card (cache off)."""
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        cardloop.run(pipe, executor=executor, store=store, cache=False, threads=threads)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs=2, default=[25, 50], help="the two run lengths, in steps")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import ray

    load_before = os.getloadavg()
    short_steps, long_steps = args.steps
    with tempfile.TemporaryDirectory(prefix="bray") as folder:
        folder = Path(folder)
        os.environ["HOME"] = str(folder)
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=str(folder / "ray"),
                 logging_level="WARNING")
        for warm in ("process", "ray"):  # their worker and actor start here, and stay warm for the timed runs
            cardloop.run(pipeline(folder, 1, "unrolled"), executor=warm, store=folder / "warm", threads=args.threads)
        figures: dict[str, dict[str, dict]] = {}
        for shape in SHAPES:
            pipes = [pipeline(folder, steps, shape) for steps in args.steps]
            for executor in EXECUTORS:
                short, long = (best_seconds(executor, pipe, folder / executor, args.reps, args.threads)
                               for pipe in pipes)
                per_step = (long - short) / (long_steps - short_steps)
                figures.setdefault(shape, {})[executor] = {
                    "seconds": [short, long], "ms_per_step": 1000 * per_step,
                    "fixed_seconds": short - per_step * short_steps}
        ray.shutdown()
    for shape, by_executor in figures.items():
        print(f"{shape}:")
        for executor, figure in by_executor.items():
            overhead = figure["ms_per_step"] - by_executor["local"]["ms_per_step"]
            figure["overhead_ms_per_step"] = overhead
            figure["overhead_ms_per_card"] = overhead / CARDS_PER_STEP
            print(f"  {executor:8} {figure['ms_per_step']:7.2f} ms/step  overhead {overhead:6.2f} ms/step "
                  f"= {overhead / CARDS_PER_STEP:5.2f} ms/training card  fixed {figure['fixed_seconds']:6.2f} s  "
                  f"(runs of {short_steps}/{long_steps} steps: {figure['seconds'][0]:.2f} s, "
                  f"{figure['seconds'][1]:.2f} s)")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                                         "machine": platform.processor() or platform.machine(),
                                         "cpus": os.cpu_count(), "load": [load_before, load_after],
                                         "args": vars(args) | {"json": str(args.json)}, "figures": figures},
                                        indent=1))


if __name__ == "__main__":
    main()
