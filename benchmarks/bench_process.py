"""Per-card overhead of the process executor, against the local executor and a fresh `python` process per card.

    .venv/bin/python benchmarks/bench_process.py [--quick] [--steps N] [--reps N] [--threads 1 2] [--json PATH]
                                                 [--frozen-head] [--dir /dev/shm] [--skip-fresh] [--no-breakdown]

Per-card overhead = (wall time of `cardloop.run(pipeline, executor=X, cache=False)` − wall time of the same
call with the local executor) / cards executed, with X's worker already warm. Also measured: the cold start
(the first run, worker start-up included; and a whole fresh interpreter), one card per fresh `python -c`
process after a `persist="all"` run stored every input (the guide's original model), and where the process
executor's time per card goes (orchestrator, IPC and JSON, worker). See benchmarks/README.md.
Changes nothing in cardloop: the breakdown wraps engine internals in this process only.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, namedtuple
from multiprocessing.connection import Connection
from pathlib import Path

import quiet
from bench_data import write_diabetes, write_synthetic
from quiet import RETRIES, Noise
import torch

import cardloop
from cardloop.engine import local as local_module  # engine internals: for the breakdown only
from cardloop.engine import process as process_module
from cardloop.engine.plan import plan_pipeline
from cardloop.examples import basic_training_loop

BATCH_SIZE = 32
STEP_CARDS = ("batch", "zero", "fwd", "loss", "back", "step")  # card id prefixes of one training step

Case = namedtuple("Case", "name label path input_dim layers")


# --- data and pipelines

def make_cases(directory: Path, steps: int) -> list[Case]:
    rows = steps * BATCH_SIZE
    copies = -(-rows // 442)
    return [Case("diabetes", "diabetes 10-64-64-1", write_diabetes(directory, copies), 10, (64, 64)),
            Case("synthetic", "synthetic 32-256-256-1", write_synthetic(directory, max(rows, 4000)), 32, (256, 256))]


def pipeline_for(case: Case, steps: int):
    return basic_training_loop(path=str(case.path), prepare=False, input_dim=case.input_dim, layers=case.layers,
                               batches=steps, batch_size=BATCH_SIZE, name=f"bench-process-{case.name}-{steps}")


# --- keeping other processes out of the figures

def _worker_cpu() -> float:
    """CPU seconds of this process's live worker processes (they are not reaped, so os.times misses them)."""
    total = 0.0
    for found in list(process_module._workers.values()):
        try:
            fields = Path(f"/proc/{found.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_sample():
    """A quiet.cpu_sample that counts this process's live workers as its own."""
    return quiet.cpu_sample(_worker_cpu)


def other_cores(begin) -> float | None:
    return quiet.other_cores(begin, _worker_cpu)


# --- timed runs

def timed_run(pipeline, executor: str, store: Path, threads: int | None, **options) -> tuple[float, object]:
    """One `cardloop.run(..., cache=False)` into `store`, emptied first: every timed run starts from an empty
    store at the same path, so the worker (one per store path) stays warm while the run history, which the
    process executor scans, does not grow from one repetition to the next."""
    shutil.rmtree(store, ignore_errors=True)
    gc.collect()
    started = time.perf_counter()
    result = cardloop.run(pipeline, executor=executor, store=store, threads=threads, cache=False, **options)
    wall = time.perf_counter() - started
    if result.status != "succeeded":
        raise RuntimeError(f"{executor} run {result.run_id} ended {result.status}")
    return wall, result


def worker_startup(store: Path, threads: int | None) -> float:
    """Seconds from spawning a worker to its 'ready' (interpreter, torch, torch.optim, the card registry)."""
    started = time.perf_counter()
    worker = process_module.WorkerProcess(store, threads, [])
    worker._receive()
    seconds = time.perf_counter() - started
    worker.ready = True
    worker.stop()
    return seconds


def history_scan(pipeline, store: Path, threads: int) -> dict:
    """What earlier runs in the store cost a run: the process executor builds a StoreAvailability (which reads
    every earlier execution of the plan's cache keys) in its `run` and again for the result; local runs with
    cache=False only for the result. Timed with 1 and 2 earlier runs in the store."""
    from cardloop.engine.stored import StoreAvailability
    from cardloop.store.artifacts import ArtifactStore
    from cardloop.store.records import RunRecords

    plan = plan_pipeline(pipeline)
    timed_run(pipeline, "local", store, threads)
    found = {}
    for runs in (1, 2):
        if runs == 2:
            cardloop.run(pipeline, executor="local", store=store, threads=threads, cache=False)
        best = float("inf")
        for _ in range(5):
            records = RunRecords(store / "runs.sqlite")
            started = time.perf_counter()
            StoreAvailability(plan, records, ArtifactStore(store))
            best = min(best, time.perf_counter() - started)
            records.close()
        found[runs] = best
    return {"one_run_s": found[1], "per_earlier_run_s": found[2] - found[1], "cards": len(plan.cards)}


def warm_and_cold(case: Case, pipeline, threads: int, reps: int, cold_reps: int, root: Path, noise: Noise,
                  log) -> dict:
    """Local and process runs alternate, after one warm-up of each. The cold start is a process run that starts
    its worker (best of `cold_reps`, each after stopping the worker)."""
    store = root / f"store-{case.name}-t{threads}"
    timed_run(pipeline, "local", store, threads)  # warm-up of this process (torch.optim, codecs, planning)
    colds = []
    for _ in range(cold_reps):
        process_module.stop_workers()
        noise.before()
        cold_wall, cold = timed_run(pipeline, "process", store, threads)
        colds.append(cold_wall)
    log(f"    cold process runs: {', '.join(f'{c:.2f} s' for c in colds)}")
    cards = len(cold.executed)
    row = {"model": case.label, "threads": threads, "cards": cards, "local": [], "process": [], "other": [],
           "cold_process": min(colds), "cold_all": colds, "local_seconds": [], "process_seconds": []}
    process_losses = cold.metrics("loss_value")
    del cold
    local_losses = timed_run(pipeline, "local", store, threads)[1].metrics("loss_value")
    row["max_abs_loss_diff"] = max(abs(a - b) for a, b in zip(local_losses, process_losses))
    row["losses_compared"] = min(len(local_losses), len(process_losses))
    for rep in range(reps):
        for attempt in range(RETRIES + 1):
            noise.before()
            begin = cpu_sample()
            pair = {}
            order = ("local", "process") if rep % 2 == 0 else ("process", "local")
            for executor in order:
                wall, result = timed_run(pipeline, executor, store, threads)
                pair[executor] = (wall, result.seconds)
                del result
            other = other_cores(begin)
            if attempt < RETRIES and noise.disturbed(other, sum(w for w, _ in pair.values())):
                continue
            break
        for executor in ("local", "process"):
            row[executor].append(pair[executor][0])
            row[f"{executor}_seconds"].append(pair[executor][1])
        row["other"].append(other)
        log(f"    rep {rep + 1}: local {pair['local'][0]:.3f} s, process {pair['process'][0]:.3f} s"
            + (f" (other procs {other:.2f} cores)" if other is not None else ""))
    row["store"] = str(store)
    return row


def overhead_ms(row: dict) -> float:
    return (min(row["process"]) - min(row["local"])) / row["cards"] * 1e3


# --- the cold start of a whole fresh interpreter

FRESH_RUN = """
import json, sys, time
t0 = time.perf_counter()
import torch, cardloop
t1 = time.perf_counter()
r = cardloop.run(sys.argv[1], executor=sys.argv[2], store=sys.argv[3], threads=int(sys.argv[4]), cache=False,
                 only=sys.argv[5] or None, persist=sys.argv[6])
t2 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "run": t2 - t1, "run_seconds": r.seconds,
                  "executed": r.executed, "status": r.status, "start": t0}))
"""


def fresh_process(pipeline_file: Path, executor: str, store: Path, threads: int, only: str = "",
                  persist: str = "checkpoint") -> dict:
    """One `python -c` process: import torch and cardloop, run, exit. Timed from spawn to exit."""
    gc.collect()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", FRESH_RUN, str(pipeline_file), executor, str(store), str(threads),
                           only, persist], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"fresh process failed ({done.returncode}): {done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["wall"] = wall
    return found


def import_floor(reps: int) -> float:
    """Best wall time of `python -c "import torch, cardloop"`: the floor of any fresh process."""
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, cardloop"], check=True)
        best = min(best, time.perf_counter() - started)
    return best


def fresh_interpreter_runs(case: Case, pipeline_file: Path, threads: int, reps: int, root: Path, noise: Noise,
                           log) -> dict:
    """The whole pipeline in a fresh interpreter, local against process (a fresh store each time)."""
    found = {"local": [], "process": []}
    for rep in range(reps):
        noise.before()
        for executor in (("local", "process") if rep % 2 == 0 else ("process", "local")):
            store = Path(tempfile.mkdtemp(prefix=f"fresh-{executor}-", dir=root))
            found[executor].append(fresh_process(pipeline_file, executor, store, threads))
            shutil.rmtree(store, ignore_errors=True)
        log(f"    rep {rep + 1}: local {found['local'][-1]['wall']:.2f} s, process {found['process'][-1]['wall']:.2f} s")
    return found


def fresh_per_card(case: Case, pipeline, pipeline_file: Path, steps: int, threads: int, reps: int, root: Path,
                   noise: Noise, log) -> dict:
    """The guide's model: a `persist="all"` run stores every output, then each card of one training step runs
    alone (`only=CARD`) in a fresh `python -c` that imports torch and cardloop and reads its inputs from the store."""
    store = Path(tempfile.mkdtemp(prefix=f"all-{case.name}-", dir=root))
    cardloop.run(pipeline, store=store, persist="all", threads=threads)
    step = steps // 2
    cards = [f"{prefix}{step}" for prefix in STEP_CARDS]
    found = {card: [] for card in cards}
    for rep in range(reps):
        noise.before()
        for card in (cards if rep % 2 == 0 else cards[::-1]):
            # persist="all" like the guide's cards: a card run alone under "checkpoint" would record a newer
            # execution of its cache key without the values the next card reads, and the store serves the newest
            found[card].append(fresh_process(pipeline_file, "local", store, threads, only=card, persist="all"))
        log(f"    rep {rep + 1}: " + ", ".join(f"{c} {found[c][-1]['wall']:.2f} s" for c in cards))
    shutil.rmtree(store, ignore_errors=True)
    return {"cards": cards, "runs": found}


# --- where the process executor's time goes

class Clock:
    """Accumulates seconds per name; `wrap` replaces an attribute with a timed version of it (undone by `undo`)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list = []

    def wrap(self, owner, attribute: str, name: str):
        original = getattr(owner, attribute)
        seconds, clock = self.seconds, time.perf_counter

        def timed(*args, **kwargs):
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[name] += clock() - started

        self._undo.append((owner, attribute, original))
        setattr(owner, attribute, timed)

    def undo(self) -> None:
        for owner, attribute, original in reversed(self._undo):
            setattr(owner, attribute, original)
        self._undo.clear()


TIMINGS_ENV = "CARDLOOP_BENCH_WORKER_TIMINGS"

# Loaded into the worker as a card file (it defines no cards): times the worker's steps per task, in the worker
# itself, and writes them to $CARDLOOP_BENCH_WORKER_TIMINGS when the worker exits. Does nothing elsewhere.
WORKER_HOOK = '''
import atexit, json, os, sys, time

_main = sys.modules.get("__main__")
_path = os.environ.get("CARDLOOP_BENCH_WORKER_TIMINGS")
if _path and getattr(getattr(_main, "__spec__", None), "name", None) == "cardloop.engine.worker":
    from cardloop.engine import local, snapshot
    from cardloop.store import artifacts

    clock = time.perf_counter
    runs = []
    state = {"task": None, "phase": ""}

    def add(name, seconds):
        task = state["task"]
        if task is not None:
            task[name] = task.get(name, 0.0) + seconds

    def timed(owner, attribute, name, phase=None):
        original = getattr(owner, attribute)

        def wrapper(*args, **kwargs):
            previous = state["phase"]
            key = name + ("@" + previous if name == "put" else "")
            if phase:
                state["phase"] = phase
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                state["phase"] = previous
                add(key, clock() - started)

        setattr(owner, attribute, wrapper)

    class TimedJson:
        def loads(self, text, *args, **kwargs):
            started = clock()
            value = json.loads(text, *args, **kwargs)
            seconds = clock() - started
            if isinstance(text, (bytes, bytearray)) and isinstance(value, dict) and value.get("op") == "run":
                if "pipeline" in value or not runs:
                    runs.append([])
                state["task"] = {"target": value["target"], "json_decode": seconds}
                runs[-1].append(state["task"])
            return value

        def dumps(self, value, *args, **kwargs):
            started = clock()
            text = json.dumps(value, *args, **kwargs)
            if isinstance(value, dict) and ("outputs" in value or "error" in value):
                add("json_encode", clock() - started)
            return text

        def __getattr__(self, name):
            return getattr(json, name)

    _main.json = TimedJson()
    timed(_main.Worker, "handle", "handle")
    timed(_main.Worker, "plan", "plan")
    timed(local.LocalExecutor, "run", "executor")
    timed(_main.CachingLoader, "state", "load_state")
    timed(_main.CachingLoader, "value", "load_value")
    timed(_main.Worker, "write_outputs", "write_outputs", phase="outputs")
    timed(_main.Worker, "write_snapshots", "write_snapshots", phase="snapshots")
    timed(snapshot, "snapshot_group", "encode_state")
    timed(artifacts.ArtifactStore, "put", "put")
    _put = artifacts.ArtifactStore.put

    def put(self, data, extension):
        add("bytes@" + state["phase"], len(data))
        return _put(self, data, extension)

    artifacts.ArtifactStore.put = put

    @atexit.register
    def _dump():
        with open(_path, "w") as file:
            json.dump(runs, file)
'''


class TimedJson:
    """Stands in for the process module's `json` during a profiled run: times what `WorkerProcess.call` encodes
    and decodes (the task out, the answer back)."""

    def __init__(self):
        self.seconds = 0.0
        self.in_call = False

    def _timed(self, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            if self.in_call:
                self.seconds += time.perf_counter() - started

    def dumps(self, *args, **kwargs):
        return self._timed(json.dumps, *args, **kwargs)

    def loads(self, *args, **kwargs):
        return self._timed(json.loads, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(json, name)


def process_profile(pipeline, store: Path, threads: int, reps: int, root: Path) -> dict:
    """Warm process-executor runs with the orchestrator's steps timed here and the worker's steps timed in the
    worker (WORKER_HOOK, loaded as a card file by a worker of its own, warmed up first); the best run. A run
    sends its workers only the card files that define its pipeline's cards, so the hook is added where the
    executor asks for its worker (`worker_for`)."""
    hook = root / "bench_worker_hook.py"
    hook.write_text(WORKER_HOOK)
    timings = root / "worker_timings.json"
    os.environ[TIMINGS_ENV] = str(timings)
    process_module.stop_workers()
    worker_for = process_module.worker_for
    process_module.worker_for = lambda root, threads, card_files: worker_for(root, threads, [*card_files, str(hook)])
    try:
        timed_run(pipeline, "process", store, threads)  # start and warm the hooked worker
        profiled = []
        for _ in range(reps):
            clock, proxy, messages = Clock(), TimedJson(), []
            original_call = process_module.WorkerProcess.call

            def call(self, task, progress=None, original=original_call, proxy=proxy, messages=messages):
                proxy.in_call = True
                started = time.perf_counter()
                try:
                    answer = original(self, task, progress)
                finally:
                    proxy.in_call = False
                messages.append((task, answer, time.perf_counter() - started))
                return answer

            clock.wrap(process_module, "schedule", "schedule")
            clock.wrap(process_module.ProcessExecutor, "run", "executor")
            process_module.WorkerProcess.call = call
            process_module.json = proxy
            try:
                wall, result = timed_run(pipeline, "process", store, threads)
            finally:
                process_module.WorkerProcess.call = original_call
                process_module.json = json
                clock.undo()
            profiled.append({"wall": wall, "cards": len(result.executed), "clock": clock.seconds,
                             "json": proxy.seconds, "messages": messages})
            del result
        process_module.stop_workers()  # the worker writes its timings as it exits
        worker_runs = json.loads(timings.read_text())
    finally:
        os.environ.pop(TIMINGS_ENV, None)
        process_module.worker_for = worker_for
        process_module.stop_workers()
    for run, tasks in zip(profiled, worker_runs[1:]):  # worker_runs[0]: the warm-up run
        run["worker"] = tasks
    best = min(profiled, key=lambda r: r["wall"])
    best["types"] = {pc.position: pc.card.type for pc in plan_pipeline(pipeline).cards}
    return best


ECHO = """
import sys
from multiprocessing.connection import Connection
c = Connection(int(sys.argv[1]))
while True:
    try:
        m = c.recv_bytes()
    except EOFError:
        break
    c.send_bytes(m)
"""


def ipc_round_trip(size: int, count: int = 2000) -> float:
    """Seconds per round trip of a `size`-byte message to an echo process over a socket pair, as the executor's."""
    parent, child = socket.socketpair()
    echo = subprocess.Popen([sys.executable, "-c", ECHO, str(child.fileno())], pass_fds=[child.fileno()])
    child.close()
    connection = Connection(parent.detach())
    message = b"x" * size
    for _ in range(200):
        connection.send_bytes(message)
        connection.recv_bytes()
    started = time.perf_counter()
    for _ in range(count):
        connection.send_bytes(message)
        connection.recv_bytes()
    seconds = (time.perf_counter() - started) / count
    connection.close()
    echo.wait(timeout=10)
    return seconds


def put_calibration(root: Path, count: int = 100) -> dict[int, float]:
    """Seconds per `ArtifactStore.put` (the runs' non-durable mode) of new content into an empty store, by size:
    the file-system cost that every written output and snapshot pays; it differs much from disk to disk."""
    from cardloop.store.artifacts import ArtifactStore

    found = {}
    for size in (4_000, 80_000, 1_000_000):
        store = root / f"put-{size}"
        shutil.rmtree(store, ignore_errors=True)
        artifacts = ArtifactStore(store, durable=False)
        blobs = [os.urandom(size) for _ in range(count)]
        started = time.perf_counter()
        for blob in blobs:
            artifacts.put(blob, "bin")
        found[size] = (time.perf_counter() - started) / count
        shutil.rmtree(store, ignore_errors=True)
    return found


def local_profile(pipeline, store: Path, threads: int, reps: int) -> dict:
    """Local runs with the executor loop timed (best run): what a run costs outside the loop, for comparison."""
    best = None
    for _ in range(reps):
        clock = Clock()
        clock.wrap(local_module.LocalExecutor, "run", "executor")
        try:
            wall, result = timed_run(pipeline, "local", store, threads)
        finally:
            clock.undo()
        if best is None or wall < best["wall"]:
            best = {"wall": wall, "executor": clock.seconds["executor"], "cards": len(result.executed)}
        del result
    return best


def breakdown(case: Case, pipeline, store: Path, threads: int, reps: int, root: Path) -> dict:
    """Per-card milliseconds of the best profiled process run (orchestrator here, worker in the worker) next to
    the best profiled local run."""
    local = local_profile(pipeline, store, threads, reps)
    run = process_profile(pipeline, store, threads, reps, root)
    cards, oc, tasks = run["cards"], run["clock"], run["worker"]
    w = defaultdict(float)
    for task in tasks:
        for name, seconds in task.items():
            if name != "target":
                w[name] += seconds
    call_total = sum(s for _, _, s in run["messages"])
    worker_total = w["json_decode"] + w["handle"] + w["json_encode"]
    loads = w["load_state"] + w["load_value"]
    ms = lambda s: None if s is None else s / cards * 1e3  # noqa: E731
    rows = [  # (what, process ms/card, local ms/card)
        ("wall time of the run", ms(run["wall"]), ms(local["wall"])),
        ("outside the executor loop: plan, store, run record, recorder drain, result",
         ms(run["wall"] - oc["executor"]), ms(local["wall"] - local["executor"])),
        ("executor loop", ms(oc["executor"]), ms(local["executor"])),
        ("  orchestrator: `schedule()` for the card (what to load, what to recompute)", ms(oc["schedule"]), None),
        ("  orchestrator: rest of the loop (StoreAvailability, task dict, hooks, recorder queue)",
         ms(oc["executor"] - oc["schedule"] - call_total), None),
        ("  round trip `WorkerProcess.call` (the rows below)", ms(call_total), None),
        ("    orchestrator: JSON encode task, decode answer", ms(run["json"]), None),
        ("    IPC: socket pair, wake-ups, GIL (round trip − JSON − worker)",
         ms(call_total - run["json"] - worker_total), None),
        ("    worker: JSON decode task, encode answer", ms(w["json_decode"] + w["json_encode"]), None),
        ("    worker: `Worker.handle` (the rows below)", ms(w["handle"]), None),
        ("      load inputs: decode stored state and values (incl. in-memory hits)", ms(loads), None),
        ("      run the card (+ recompute its lineage for Backward)", ms(w["executor"] - loads), None),
        ("      encode value outputs (codecs)", ms(w["write_outputs"] - w["put@outputs"]), None),
        ("      write value outputs (sha256, exists-check, write, rename)", ms(w["put@outputs"]), None),
        ("      encode the state snapshot (model + grads, optimizer, RNG)", ms(w["encode_state"]), None),
        ("      write the snapshot (sha256, exists-check, write, rename)", ms(w["put@snapshots"]), None),
        ("      other (plan lookup, building the schedule, remember_state)",
         ms(w["handle"] - w["executor"] - w["write_outputs"] - w["encode_state"] - w["put@snapshots"]), None),
    ]
    per_type: dict[str, dict] = {}
    for (task, answer, seconds), timed in zip(run["messages"], tasks):
        assert timed["target"] == task.target
        entry = per_type.setdefault(run["types"][task.target], defaultdict(float))
        entry["n"] += 1
        entry["round_trip"] += seconds
        entry["handle"] += timed.get("handle", 0.0)
        entry["snapshot"] += timed.get("encode_state", 0.0) + timed.get("put@snapshots", 0.0)
        entry["snapshots"] += len(answer.snapshots)
        entry["ran"] += len(task.positions)
    sizes = [(len(json.dumps(t.to_json())), len(json.dumps(a.to_json()))) for t, a, _ in run["messages"]]
    task_bytes, answer_bytes = (sum(s) / len(sizes) for s in zip(*sizes))
    return {"model": case.label, "threads": threads, "cards": cards, "rows": rows,
            "bytes_outputs": w["bytes@outputs"], "bytes_snapshots": w["bytes@snapshots"],
            "per_type": {k: dict(v) for k, v in per_type.items()},
            "overhead_ms": ms(run["wall"] - local["wall"]),
            "lineage_cards": sum(len(t.positions) - 1 for t, _, _ in run["messages"]),
            "ipc_echo_ms": ipc_round_trip(int((task_bytes + answer_bytes) / 2)) * 1e3,
            "task_bytes": task_bytes, "answer_bytes": answer_bytes,
            "snapshot_count": sum(len(a.snapshots) for _, a, _ in run["messages"]),
            "history": history_scan(pipeline, store, threads), "put": put_calibration(root)}


# --- report

def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               platform.processor() or "unknown")
    frozen = os.environ.get(FROZEN_ENV)
    if frozen:
        commit = f"{frozen} (a `git archive` copy of its src/, as committed)"
    else:
        git = ["git", "--no-optional-locks", "-C", str(Path(cardloop.__file__).resolve().parents[2])]  # read-only
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout
        commit = (head or "unknown") + (" + uncommitted changes in src/" if dirty.strip() else " (clean src/)")
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "default_threads": torch.get_num_threads(), "python": platform.python_version(), "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def store_filesystem(folder: Path) -> str:
    """`folder (fstype)` from /proc/mounts: the longest mount point that contains `folder`."""
    folder, point_found, fstype_found = folder.resolve(), "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, point, fstype = line.split()[:3]
            if folder.is_relative_to(point) and len(point) >= len(point_found):
                point_found, fstype_found = point, fstype
    except OSError:
        pass
    return f"{folder} ({fstype_found})"


def fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def report(m: dict, args, warm: list[dict], fresh_interp: dict, fresh_cards: dict, floor: float | None,
           parts: list[dict], total_s: float) -> str:
    out = [f"machine: {m['cpu']}, {m['cores']} cores; torch {m['torch']} (default threads {m['default_threads']}); "
           f"Python {m['python']}; cardloop commit {m['commit']}; {m['date']}; load average at start {m['load']}; "
           f"{args.steps} training steps per run; best of {args.reps}; stores in {m['store_fs']}; "
           f"whole benchmark {total_s:.0f} s",
           "",
           "### Warm: per-card overhead of the process executor (worker already started)",
           "",
           "| model | threads | cards | local wall s | process wall s | **overhead ms/card** | median of pairs | "
           "per-pair ms/card | "
           "process ÷ local | cold: first process run s | cold − warm s | other procs (max cores) | "
           "max abs loss diff |",
           "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for row in warm:
        per_pair = [(p - l) / row["cards"] * 1e3 for l, p in zip(row["local"], row["process"])]
        pairs = ", ".join(f"{v:.2f}" for v in per_pair)
        other = max((o for o in row["other"] if o is not None), default=None)
        out.append(f"| {row['model']} | {row['threads']} | {row['cards']} | {min(row['local']):.3f} | "
                   f"{min(row['process']):.3f} | **{overhead_ms(row):.2f}** | {statistics.median(per_pair):.2f} | "
                   f"{pairs} | "
                   f"{min(row['process']) / min(row['local']):.1f} | {row['cold_process']:.2f} | "
                   f"{row['cold_process'] - min(row['process']):.2f} | {fmt(other)} | "
                   f"{row['max_abs_loss_diff']:.1e} |")
    out.append("")
    if warm:
        goal = [r for r in warm if r["model"].startswith("diabetes")]
        figures = "; ".join(f"{r['threads']} thread(s): {overhead_ms(r):.2f} ms, "
                            f"{'met' if overhead_ms(r) <= 3.0 else 'not met'}" for r in goal)
        out.append(f"Goal (≤ 3 ms per card for the diabetes-size MLP), best pair: {figures}.")
        out.append("")
    if "startup" in fresh_interp:
        out.append(f"Worker start-up alone (spawn → ready: interpreter, torch, torch.optim, card registry): "
                   f"best {min(fresh_interp['startup']):.2f} s of {len(fresh_interp['startup'])}.")
        out.append("")
    if fresh_interp.get("cases"):
        out += ["### Cold: the whole pipeline in a fresh interpreter (`python -c`: import, run, exit)", "",
                "| model | threads | cards | local s | process s | process − local s | `import torch, cardloop` "
                "(local / process) s |",
                "|---|---:|---:|---:|---:|---:|---|"]
        for entry in fresh_interp["cases"]:
            lo = min(entry["local"], key=lambda r: r["wall"])
            pr = min(entry["process"], key=lambda r: r["wall"])
            out.append(f"| {entry['model']} | {entry['threads']} | {len(lo['executed'])} | {lo['wall']:.2f} | "
                       f"{pr['wall']:.2f} | {pr['wall'] - lo['wall']:.2f} | {lo['imports']:.2f} / {pr['imports']:.2f} |")
        out.append("")
    if fresh_cards.get("cases"):
        out += ["### One card per fresh `python -c` process (the guide's original model)", "",
                f"Floor: `python -c \"import torch, cardloop\"` takes {fmt(floor)} s (best of "
                f"{args.fresh_reps}).", "",
                "| model | card | type | cards run (lineage) | wall s (best) | `import torch, cardloop` s | "
                "`cardloop.run` s | of which executing (`RunResult.seconds`) s | "
                "interpreter start + exit s |",
                "|---|---|---|---|---:|---:|---:|---:|---:|"]
        summary = []
        for entry in fresh_cards["cases"]:
            walls = []
            for card in entry["cards"]:
                best = min(entry["runs"][card], key=lambda r: r["wall"])
                walls.append(best["wall"])
                rest = best["wall"] - best["imports"] - best["run"]
                out.append(f"| {entry['model']} | {card} | {entry['types'][card]} | {', '.join(best['executed'])} | "
                           f"{best['wall']:.2f} | {best['imports']:.2f} | {best['run']:.2f} | "
                           f"{best['run_seconds']:.2f} | {rest:.2f} |")
            local_per_card = entry["local_per_card"]
            mean = statistics.mean(walls)
            summary.append((entry["model"], mean, mean - local_per_card, entry.get("process_ms")))
        out.append("")
        out += ["| model | fresh process: mean wall per card s | **overhead per card** (− local per card) s | "
                "process executor overhead per card ms | fresh ÷ process-executor overhead |",
                "|---|---:|---:|---:|---:|"]
        for model, mean, over, process_ms in summary:
            ratio = over * 1e3 / process_ms if process_ms else None
            out.append(f"| {model} | {mean:.2f} | **{over:.2f}** | {fmt(process_ms)} | {fmt(ratio, '.0f')}× |")
        out.append("")
    for part in parts:
        h = part["history"]
        out += [f"### Where the process executor's time goes: {part['model']}, threads {part['threads']} "
                f"(ms per card, {part['cards']} cards)", "",
                "| per card | process ms | local ms |", "|---|---:|---:|"]
        out += [f"| {name} | {fmt(p, '.3f')} | {fmt(l, '.3f') if l is not None else '–'} |"
                for name, p, l in part["rows"]]
        out += [f"| **overhead** (process − local wall) | **{part['overhead_ms']:.3f}** | |", "",
                f"Messages: task {part['task_bytes']:.0f} B, answer {part['answer_bytes']:.0f} B on average; "
                f"a bare echo round trip of that size over a socket pair takes {part['ipc_echo_ms']:.3f} ms. "
                f"The worker wrote {part['snapshot_count']} state snapshots for {part['cards']} cards and recomputed "
                f"{part['lineage_cards']} lineage cards; it handed {part['bytes_snapshots'] / 1e6:.1f} MB of snapshots "
                f"and {part['bytes_outputs'] / 1e6:.2f} MB of value outputs to the artifact store in the run. Earlier runs in the store: scanning one earlier run of this "
                f"{h['cards']}-card pipeline takes {h['one_run_s'] * 1e3:.1f} ms, each further one "
                f"{h['per_earlier_run_s'] * 1e3:.1f} ms; the process executor scans twice per run, local "
                f"(cache=False) once, so every earlier run in the store adds about "
                f"{h['per_earlier_run_s'] / h['cards'] * 1e3:.3f} ms per card to the process overhead "
                f"(the timed runs here start from an empty store). One `ArtifactStore.put` of new content takes "
                + ", ".join(f"{sec * 1e3:.2f} ms for {size // 1000} kB" for size, sec in part["put"].items())
                + " on this disk.", "",
                "| card type | cards | round trip ms | worker `handle` ms | of which snapshot (encode + write) ms | "
                "cards run per task | snapshots per card |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for name, e in part["per_type"].items():
            n = e["n"]
            out.append(f"| {name} | {n:.0f} | {e['round_trip'] / n * 1e3:.3f} | {e['handle'] / n * 1e3:.3f} | "
                       f"{e['snapshot'] / n * 1e3:.3f} | {e['ran'] / n:.1f} | {e['snapshots'] / n:.1f} |")
        out.append("")
    return "\n".join(out)


# --- main

FROZEN_ENV = "CARDLOOP_BENCH_FROZEN_COMMIT"


def run_frozen_head(argv: list[str]) -> int:
    """Run this benchmark again in a child process on a `git archive` copy of HEAD's src/ (read-only for the
    repository), so that edits others make to the working tree while it runs cannot change the code measured:
    this process, its workers and its fresh `python -c` processes all import the same copy."""
    repo = Path(__file__).resolve().parents[1]
    git = ["git", "--no-optional-locks", "-C", str(repo)]
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    copy = Path(tempfile.mkdtemp(prefix=f"cardloop-{head}-"))  # on disk: imports should not change with --dir
    try:
        archive = subprocess.run(git + ["archive", "--format=tar", head, "src"], capture_output=True, check=True)
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(copy, filter="data")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(copy / "src"), os.environ.get("PYTHONPATH", "")]),
                   **{FROZEN_ENV: head})
        print(f"benchmarking commit {head} from a copy in {copy}", file=sys.stderr, flush=True)
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *argv], env=env)

        def stop(signum, frame):  # a SIGTERM ends the child too, and still removes the copy
            child.terminate()
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, stop)
        return child.wait()
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 steps, 2 repetitions, no quiet-waits")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 100)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each warm pair (default 5)")
    parser.add_argument("--fresh-reps", type=int, default=None, help="repetitions of fresh processes (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)")
    parser.add_argument("--no-breakdown", action="store_true", help="no profiled runs (where the time goes)")
    parser.add_argument("--skip-fresh", action="store_true", help="no fresh-interpreter or fresh-per-card runs")
    parser.add_argument("--quiet-wait", type=float, default=None, help="wait up to S s for a quiet CPU (default 10)")
    parser.add_argument("--allowance", type=float, default=120.0,
                        help="total seconds that quiet-waits and re-measurements may add (default 120)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the data, stores and copies go (default: the system temp folder; "
                             "/dev/shm takes the disk out of the figures)")
    parser.add_argument("--json", type=Path, default=None, help="write every raw timing to this file")
    parser.add_argument("--frozen-head", action="store_true",
                        help="measure the committed HEAD (a git archive copy of src/), not the working tree")
    args = parser.parse_args(argv)
    if args.frozen_head and not os.environ.get(FROZEN_ENV):
        return run_frozen_head([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--frozen-head"])
    if os.environ.get(FROZEN_ENV) and not Path(cardloop.__file__).resolve().is_relative_to(
            Path(os.environ["PYTHONPATH"].split(os.pathsep)[0]).resolve()):
        raise SystemExit(f"expected cardloop from the frozen copy, imported {cardloop.__file__}")
    args.steps = args.steps or (30 if args.quick else 100)
    args.reps = args.reps or (2 if args.quick else 5)
    args.fresh_reps = args.fresh_reps or (1 if args.quick else 3)
    wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 10.0)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up on SIGTERM too
    m = machine_info()
    m["store_fs"] = store_filesystem(args.dir or Path(tempfile.gettempdir()))
    noise = Noise(wait, log, args.allowance, own_extra=_worker_cpu)
    total_start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="cardloop-bench-process-", dir=args.dir))
    warm, parts, fresh_interp, fresh_cards, floor = [], [], {"cases": []}, {"cases": []}, None
    try:
        cases = make_cases(root, args.steps)
        pipelines = {c.name: pipeline_for(c, args.steps) for c in cases}
        files = {}
        for case in cases:
            files[case.name] = root / f"{case.name}.yaml"
            pipelines[case.name].save(files[case.name])
        for case in cases:
            for threads in args.threads:
                log(f"{case.label}, threads {threads}: warm and cold runs")
                row = warm_and_cold(case, pipelines[case.name], threads, args.reps, args.fresh_reps, root, noise,
                                    log)
                warm.append(row)
                if not args.no_breakdown:
                    log(f"{case.label}, threads {threads}: breakdown")
                    parts.append(breakdown(case, pipelines[case.name], Path(row["store"]), threads, 3, root))
                process_module.stop_workers()
                shutil.rmtree(row.pop("store"), ignore_errors=True)
        fresh_interp["startup"] = []
        for _ in range(args.fresh_reps):
            noise.before()
            fresh_interp["startup"].append(worker_startup(root, args.threads[0]))
        if not args.skip_fresh:
            threads = args.threads[0]
            floor = import_floor(args.fresh_reps)
            for case in cases:
                log(f"{case.label}: whole pipeline in a fresh interpreter")
                entry = fresh_interpreter_runs(case, files[case.name], threads, args.fresh_reps, root, noise, log)
                fresh_interp["cases"].append({"model": case.label, "threads": threads, **entry})
                log(f"{case.label}: one card per fresh process")
                entry = fresh_per_card(case, pipelines[case.name], files[case.name], args.steps, threads,
                                       args.fresh_reps, root, noise, log)
                row = next(r for r in warm if r["model"] == case.label and r["threads"] == threads)
                entry.update(model=case.label, local_per_card=min(row["local"]) / row["cards"],
                             process_ms=overhead_ms(row),
                             types={pc.id: pc.type for pc in pipelines[case.name].cards})
                fresh_cards["cases"].append(entry)
    finally:
        process_module.stop_workers()
        shutil.rmtree(root, ignore_errors=True)
    total = time.perf_counter() - total_start
    print(report(m, args, warm, fresh_interp, fresh_cards, floor, parts, total))
    if args.json:
        for part in parts:
            part["rows"] = [list(r) for r in part["rows"]]
        args.json.write_text(json.dumps({"machine": m, "args": {k: str(v) for k, v in vars(args).items()},
                                         "warm": warm, "fresh_interpreter": fresh_interp,
                                         "fresh_per_card": fresh_cards, "import_floor": floor,
                                         "breakdown": parts, "total_s": total}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
