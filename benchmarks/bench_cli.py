"""How fast the CLI answers: `cardloop runs`, `cards` and `validate` against `python -c "import torch"`, and
`show RUN` / `show RUN CARD` and the editor's run views on a store holding a run of about 10,000 cards.
`validate` checks examples/basic_training_loop.yaml (276 cards), and the 10,000-card pipeline too.

    .venv/bin/python benchmarks/bench_cli.py [--reps N] [--batches N] [--dir DIR] [--json PATH]

Every command runs as a user runs it: a fresh `python -m cardloop.cli ...` process, timed wall-clock from start
to exit, the median of `--reps` runs. The store is real: the guide's Basic Training Loop
(`cardloop.examples.basic_training_loop`) over `--batches` batches of 8 rows of the diabetes data repeated
38 times (1,667 batches: 10,008 cards), run once with the default persist policy, local executor, one thread.
"Beyond start-up" subtracts the median of `cardloop runs` on the same store (Python, cardloop and the CLI
starting, one query). The editor's run views are timed in this process through FastAPI's TestClient: the first
request, then the median of the next `--reps`. Changes nothing in cardloop; run it with PYTHONPATH pointing at
another checkout's src/ to compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_data import write_diabetes

import cardloop
from cardloop.examples import basic_training_loop

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "basic_training_loop.yaml"  # 276 cards
BATCH_SIZE, COPIES = 8, 38  # 38 copies of the 442 rows: 13,437 training rows, 1,679 batches of 8


def timed(command: list[str], cwd: Path) -> float:
    """Seconds from starting a process to its exit (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def median_of(command: list[str], cwd: Path, reps: int) -> float:
    timed(command, cwd)  # warm the file cache
    return statistics.median(timed(command, cwd) for _ in range(reps))


def make_store(folder: Path, batches: int) -> tuple[Path, str, Path, int]:
    """A store with one run of the Basic Training Loop over `batches` batches; (store, run id, pipeline file,
    cards)."""
    data = write_diabetes(folder, COPIES)
    pipeline = basic_training_loop(path=str(data), batches=batches, batch_size=BATCH_SIZE, layers=(16,))
    file = pipeline.save(folder / "loop.yaml")
    started = time.perf_counter()
    result = cardloop.run(pipeline, store=folder / "store", threads=1)
    print(f"made the store: {len(pipeline.cards)} cards in {time.perf_counter() - started:.1f}s", flush=True)
    return folder / "store", result.run_id, file, len(pipeline.cards)


def api_views(store: Path, run_id: str, cards: list[str], reps: int) -> dict[str, dict[str, float]]:
    """The editor's run views: first request and median of the next `reps`, in seconds."""
    from fastapi.testclient import TestClient

    from cardloop.server.app import create_app

    with tempfile.TemporaryDirectory() as pipelines:
        client = TestClient(create_app(store.resolve(), Path(pipelines), store.parent), base_url="http://127.0.0.1")
        found = {}
        urls = {"run": f"/api/runs/{run_id}", "metrics": f"/api/runs/{run_id}/metrics",
                **{f"outputs {card}": f"/api/runs/{run_id}/cards/{card}/outputs" for card in cards}}
        for name, url in urls.items():
            times = []
            for _ in range(reps + 1):
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"GET {url}: {response.status_code} {response.text[:500]}")
            found[name] = {"first": times[0], "median": statistics.median(times[1:]), "bytes": len(response.content)}
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batches", type=int, default=1667, help="batches of the run (6 cards each, plus 6)")
    parser.add_argument("--dir", type=Path, default=None, help="where the store goes (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        folder = Path(scratch)
        store, run_id, file, cards = make_store(folder, args.batches)
        cli = [sys.executable, "-m", "cardloop.cli"]
        last_step = f"step{args.batches - 1}"
        middle_step = f"step{args.batches // 2}"
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "runs": [*cli, "runs", "--store", str(store)],
            "cards": [*cli, "cards"],
            "validate": [*cli, "validate", str(EXAMPLE)],
            f"validate ({cards} cards)": [*cli, "validate", str(file)],
            "show RUN": [*cli, "show", run_id, "--store", str(store)],
            f"show RUN {middle_step}": [*cli, "show", run_id, middle_step, "--store", str(store)],
            f"show RUN {last_step}": [*cli, "show", run_id, last_step, "--store", str(store)],
        }
        figures = {}
        for name, command in commands.items():
            figures[name] = median_of(command, folder, args.reps)
            print(f"{name:<24} {figures[name]:7.3f} s", flush=True)
        torch_s, start_s = figures["import torch"], figures["runs"]
        print(f"\nagainst `import torch` ({torch_s:.3f} s): "
              + ", ".join(f"{n} {figures[n] / torch_s:.2f}x" for n in ("runs", "cards", "validate")))
        print("beyond start-up (`runs`): " + ", ".join(f"{n} {figures[n] - start_s:+.3f} s"
                                                       for n in commands if n.startswith("show")))
        views = api_views(store, run_id, [middle_step, last_step], args.reps)
        print("\neditor's run views (in process):")
        for name, view in views.items():
            print(f"  {name:<22} first {view['first']:.3f} s, then {view['median']:.3f} s ({view['bytes']:,} bytes)")
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "cards": cards, "reps": args.reps, "commands_s": figures, "api_s": views}, indent=2))


if __name__ == "__main__":
    main()
