"""How long a large pipeline file takes to load and validate, as `cardloop validate FILE` does.

    .venv/bin/python benchmarks/bench_files.py [--reps N] [--cards N ...]

For each size (default 12,000 and 16,000 cards) the guide's Basic Training Loop with that many cards
(`cardloop.examples.basic_training_loop`, six cards a batch) is saved as YAML and as JSON to a temporary folder,
then loaded (`load_pipeline`) and validated (`check_pipeline`) --reps times in this process. Prints the best and
the median of the wall-clock seconds, and the CPU seconds of the best repetition. The goal: load + validate of
the 16,000-card YAML file under 1 s. The card catalogue is imported before timing, as the CLI does before it
reads the file. See benchmarks/README.md. Changes nothing in cardloop.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from cardloop.cards.registry import default_registry
from cardloop.examples import basic_training_loop
from cardloop.pipeline.fileformat import load_pipeline
from cardloop.pipeline.validate import check_pipeline

FIXED_CARDS = 6  # data, split, normalize, model, optimizer and evaluate around the batches' six cards each


def timed(call) -> tuple[float, float]:
    """(wall s, CPU s) of one call, with the garbage collector run before it."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(file: Path, reps: int) -> dict[str, float]:
    """Seconds to load, to validate, and both, over `reps` repetitions: best and median wall, best's CPU."""
    loads, checks, totals = [], [], []
    for _ in range(reps):
        found = {}
        load = timed(lambda: found.update(pipeline=load_pipeline(file)))
        check = timed(lambda: check_pipeline(found["pipeline"]))
        loads.append(load)
        checks.append(check)
        totals.append((load[0] + check[0], load[1] + check[1]))
    best = min(totals)
    return {"load": min(loads)[0], "validate": min(checks)[0], "best": best[0], "best_cpu": best[1],
            "median": statistics.median(t[0] for t in totals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per file (default 5)")
    parser.add_argument("--cards", type=int, nargs="+", default=[12_000, 16_000],
                        help="pipeline sizes in cards, rounded up to whole batches (default 12000 16000)")
    args = parser.parse_args()
    default_registry()
    print(f"PyYAML {yaml.__version__}, libyaml {'yes' if yaml.__with_libyaml__ else 'no'}; "
          f"{args.reps} repetitions, seconds")
    print(f"{'cards':>7} {'file':>5} {'MB':>5} {'load':>6} {'validate':>8} {'best':>6} {'(cpu)':>6} {'median':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for cards in args.cards:
            pipeline = basic_training_loop(batches=-(-(cards - FIXED_CARDS) // 6))
            for suffix in (".yaml", ".json"):
                file = pipeline.save(Path(folder) / f"p{len(pipeline.cards)}{suffix}")
                row = measure(file, args.reps)
                print(f"{len(pipeline.cards):>7} {suffix[1:]:>5} {file.stat().st_size / 1e6:>5.2f} {row['load']:>6.3f} "
                      f"{row['validate']:>8.3f} {row['best']:>6.3f} {row['best_cpu']:>6.3f} {row['median']:>6.3f}")


if __name__ == "__main__":
    main()
