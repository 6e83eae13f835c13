"""Per-card overhead of the Ray executor, against the local and process executors, on the same unrolled loop.

    .venv/bin/python benchmarks/bench_ray.py [--steps 25 50] [--reps 3] [--threads 1] [--json PATH]

Needs the `ray` extra. Starts a Ray on this machine (temp files and $HOME/.ray in a temporary folder). The Ray
executor's actor and the process executor's worker are started by a first run and stay warm. A run's wall time is
a fixed part (planning, recording) plus a cost per card: the per-card cost is the slope between two run lengths, (T(long) − T(short)) / (cards(long) −
cards(short)), the best of `--reps` runs each, and the overhead per card is that slope minus the local
executor's.
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
from cardloop.examples import basic_training_loop

BATCH_SIZE = 32


def pipeline(path: Path, steps: int):
    return basic_training_loop(path=str(path), prepare=False, input_dim=32, layers=(64, 64), batches=steps,
                               batch_size=BATCH_SIZE, name=f"bench-ray-{steps}")


def best_seconds(executor: str, pipe, store: Path, reps: int, threads: int) -> tuple[float, int]:
    """The fastest of `reps` runs of every card (cache off), and how many cards a run executes."""
    best, cards = float("inf"), 0
    for _ in range(reps):
        started = time.perf_counter()
        result = cardloop.run(pipe, executor=executor, store=store, cache=False, threads=threads)
        best = min(best, time.perf_counter() - started)
        cards = len(result.executed)
    return best, cards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs=2, default=[25, 50], help="the two run lengths, in steps")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory(prefix="bray") as folder:
        folder = Path(folder)
        os.environ["HOME"] = str(folder)
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=str(folder / "ray"),
                 logging_level="WARNING")
        data = write_synthetic(folder, max(args.steps) * BATCH_SIZE)
        for warm in ("process", "ray"):  # their worker and actor start here, and stay warm for the timed runs
            cardloop.run(pipeline(data, 1), executor=warm, store=folder / "warm", threads=args.threads)
        figures = {}
        for executor in ("local", "process", "ray"):
            times = [best_seconds(executor, pipeline(data, steps), folder / executor, args.reps, args.threads)
                     for steps in args.steps]
            (short, short_cards), (long, long_cards) = times
            figures[executor] = {"seconds": [short, long], "cards": [short_cards, long_cards],
                                 "ms_per_card": 1000 * (long - short) / (long_cards - short_cards),
                                 "fixed_seconds": short - (long - short) / (long_cards - short_cards) * short_cards}
        ray.shutdown()
    for executor, figure in figures.items():
        overhead = figure["ms_per_card"] - figures["local"]["ms_per_card"]
        figure["overhead_ms_per_card"] = overhead
        print(f"{executor:8} {figure['ms_per_card']:7.2f} ms/card  overhead {overhead:6.2f} ms/card  "
              f"fixed {figure['fixed_seconds']:6.2f} s  (runs of {figure['cards']} cards: "
              f"{figure['seconds'][0]:.2f} s, {figure['seconds'][1]:.2f} s)")
    if args.json:
        args.json.write_text(json.dumps({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                                         "machine": platform.processor() or platform.machine(),
                                         "cpus": os.cpu_count(), "args": vars(args) | {"json": str(args.json)},
                                         "figures": figures}, indent=1))


if __name__ == "__main__":
    main()
