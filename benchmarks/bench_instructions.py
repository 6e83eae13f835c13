"""Instructions per training step, counted by Valgrind (callgrind), for the hand loop and the loop as cards.

    .venv/bin/python benchmarks/bench_instructions.py [--steps N] [--variants hand,cards,...]

Wall-clock ratios on a shared VM move by ±0.15 from run to run; an instruction count does not. Each variant runs in
its own process under `valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes`, which counts nothing until
the variant has trained 10 warm-up steps and stops after N more (default 300): the counts cover exactly those
steps, not imports, data, planning or the run's set-up. Variants (diabetes MLP 10-64-64-1, batch 32, 1 thread):

  hand      the hand-written loop (slices, zero_grad, forward, MSE, backward, Adam step, loss.item())
  cards     the six training cards' run functions called directly, in a plain loop
  executor  the unrolled 6-cards-per-step plan run by LocalExecutor, with no recorder and no store
  run       cardloop.run of the same pipeline: executor, run recorder (default persist policy) and its writer thread
  loop      cardloop.run of the same batches in one training_loop card
  blocks    cardloop.run of the same batches as loop blocks (cardloop.examples.loop_blocks, one epoch of a copy of
            the file trimmed to the steps run)

Needs valgrind with its headers (Debian: `apt-get install valgrind`) and a C compiler, for the few lines of C that
switch counting on and off (callgrind's client requests). Prints instructions, data references and simulated
cache misses per step: first level, and one core's L2 as the last level. Each variant runs without address
randomization and with a fixed hash seed. A count is not a time: benchmarks/README.md says how the two relate
here. The writer process of the `run` variant is a separate program and is not counted; its thread is.
Changes nothing in cardloop.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

VARIANTS = ("hand", "cards", "executor", "run", "loop", "blocks")
# The simulated last-level cache is one core's L2 of the machine in benchmarks/README.md (1 MiB, 8-way, 64-byte
# lines): its misses are the lines that come from L3 or memory, the slow ones. (Valgrind would otherwise model the
# whole, shared L3 that the VM reports, as one direct-mapped cache.)
L2 = "1048576,8,64"
WARM_UP = 10
SWITCH_C = """#include <valgrind/callgrind.h>
void counting_on(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void counting_off(void) { CALLGRIND_DUMP_STATS_AT("steps"); CALLGRIND_STOP_INSTRUMENTATION; }
"""


# --- the child: one variant, under valgrind ---------------------------------------------------------------

class Counter:
    """Calls the switch when step WARM_UP starts and when step WARM_UP + steps starts."""

    def __init__(self, library: str, steps: int):
        self.switch, self.steps, self.seen = ctypes.CDLL(library), steps, 0

    def step(self) -> None:
        self.seen += 1
        if self.seen == WARM_UP + 1:
            self.switch.counting_on()
        elif self.seen == WARM_UP + self.steps + 1:
            self.switch.counting_off()


def child(variant: str, steps: int, library: str, folder: Path) -> None:
    import torch
    import torch.nn.functional as F
    from bench_data import write_diabetes
    from bench_local import BLOCKS, Case, make_model, pipeline_for, to_tensors

    import cardloop
    from cardloop.cards.registry import default_registry
    from cardloop.engine.events import RunHooks
    from cardloop.engine.local import LocalExecutor
    from cardloop.engine.plan import plan_pipeline

    torch.set_num_threads(1)
    path = write_diabetes(folder, 150)
    case = Case("diabetes 10-64-64-1", "diabetes", path, 10, (64, 64), {})
    # Step WARM_UP + steps + 1 switches counting off and one more step runs uncounted. A pipeline's last
    # prepare-batch card is the frame's last reader: dropping the frame there frees its cached batch views,
    # two tensors per batch of the whole file (4,144 here), a cost of the run's end that would otherwise land
    # in the counted steps (~5.5 M instructions, ~0.8 % of 300 steps).
    total = WARM_UP + steps + 2
    counter = Counter(library, steps)
    registry = default_registry()
    if variant == "hand":
        X, y = to_tensors(path)
        model = make_model(case)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for i in range(total):
            counter.step()
            xb, yb = X[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]
            opt.zero_grad()
            loss = F.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
            loss.item()
    elif variant == "cards":
        from bench_parts import card_functions, six_card_step

        from cardloop.cards.data import DataLoadConfig

        plan = plan_pipeline(pipeline_for(case, total))
        frame = registry.get("data_load").run(config=DataLoadConfig(path=str(path)))["dataset"]
        functions = card_functions()
        model = make_model(case)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        context = plan.context(plan.cards[3 + 4])
        configs = [[pc.config for pc in plan.cards[k:k + 6]] for k in range(3, len(plan.cards), 6)]
        gc.freeze()  # as a run freezes its set-up's objects
        for c in configs:
            counter.step()
            six_card_step(functions, c, frame, model, opt, context)
    elif variant in ("executor", "run"):
        zero_grad = registry.get("training_zero_grad")
        unmarked = zero_grad.run

        def marked(**kwargs):
            counter.step()
            return unmarked(**kwargs)

        object.__setattr__(zero_grad, "run", marked)
        if variant == "executor":
            plan = plan_pipeline(pipeline_for(case, total))
            gc.freeze()
            LocalExecutor().run(plan, RunHooks([SimpleNamespace(card_done=lambda *args: None)]))
        else:
            cardloop.run(pipeline_for(case, total), store=folder / "store", threads=1)
    elif variant in ("loop", "blocks"):
        from cardloop.examples import training_loop

        unmarked = torch.optim.Adam.zero_grad

        def marked(self, *args, **kwargs):  # both clear the gradients once per step (blocks: its Zero Gradients)
            counter.step()
            return unmarked(self, *args, **kwargs)

        torch.optim.Adam.zero_grad = marked
        pipeline = pipeline_for(case, total, BLOCKS, folder) if variant == "blocks" else training_loop(
            path=str(path), prepare=False, input_dim=10, layers=(64, 64), batches=total, batch_size=32,
            learning_rate=1e-3, name="bench-loop")
        cardloop.run(pipeline, store=folder / "store", threads=1)
    if counter.seen <= WARM_UP + steps:
        raise SystemExit(f"{variant}: only {counter.seen} steps ran; counting never stopped")


# --- the parent: run each variant under valgrind, read the counts ------------------------------------------

def build_switch(folder: Path) -> str:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if shutil.which("valgrind") is None or compiler is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        raise SystemExit("bench_instructions needs valgrind with its headers and a C compiler "
                         "(Debian: apt-get install valgrind gcc)")
    source, library = folder / "switch.c", folder / "libswitch.so"
    source.write_text(SWITCH_C)
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return str(library)


def counts(out_file: str, steps: int) -> dict[str, float]:
    """Per-step totals of a callgrind dump: Ir (instructions), data references, simulated cache misses."""
    events = totals = None
    for line in Path(out_file).read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("summary:", "totals:")):
            totals = [int(v) for v in line.split()[1:]]
    if events is None or totals is None:
        raise SystemExit(f"no totals in {out_file}")
    c = dict(zip(events, totals))
    return {"instructions": c["Ir"] / steps, "data refs": (c["Dr"] + c["Dw"]) / steps,
            "I1 misses": c["I1mr"] / steps, "D1 misses": (c["D1mr"] + c["D1mw"]) / steps,
            "L2 misses": (c["ILmr"] + c["DLmr"] + c["DLmw"]) / steps, "L2 code": c["ILmr"] / steps}


def measure(variant: str, steps: int, library: str, folder: Path) -> dict[str, float]:
    work = folder / variant
    work.mkdir()
    out = work / "callgrind.out"
    # the same addresses and hashes in every run (no address randomization, a fixed hash seed): cache misses
    # depend on where objects lie
    fixed_layout = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    command = [*fixed_layout, "valgrind", "--tool=callgrind", "--instr-atstart=no", "--cache-sim=yes", f"--LL={L2}",
               f"--callgrind-out-file={out}", sys.executable, __file__, "--child", variant, "--steps", str(steps),
               "--library", library, "--folder", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    dumps = sorted(glob.glob(f"{out}.*"))  # the dump at counting_off is numbered; the final one (nothing) is not
    if done.returncode != 0 or not dumps:
        raise SystemExit(f"{variant} failed under valgrind (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return counts(dumps[0], steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--keep", metavar="DIR", help="copy each variant's callgrind dump here, as "
                        "callgrind.<variant>.out, for callgrind_annotate or KCachegrind")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.library, Path(args.folder))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="cardloop-instructions-") as name:
        folder = Path(name)
        library = build_switch(folder)
        rows = {}
        for variant in variants:
            print(f"  {variant}: {args.steps} steps under callgrind ...", file=sys.stderr, flush=True)
            rows[variant] = measure(variant, args.steps, library, folder)
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(sorted(glob.glob(str(folder / variant / "callgrind.out.*")))[0],
                            Path(args.keep) / f"callgrind.{variant}.out")
    base = rows.get("hand")
    print(f"per training step, {args.steps} steps after {WARM_UP} warm-up steps "
          "(diabetes 10-64-64-1, batch 32, 1 thread)\n")
    print("| variant | instructions | vs hand | data refs | I1 misses | D1 misses | L2 misses | of them code |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant, c in rows.items():
        versus = f"{c['instructions'] / base['instructions'] * 100 - 100:+.1f} %" if base else "n/a"
        print(f"| {variant} | {c['instructions'] / 1e3:,.1f}k | {versus} | {c['data refs'] / 1e3:,.1f}k | "
              f"{c['I1 misses']:,.0f} | {c['D1 misses']:,.0f} | {c['L2 misses']:,.0f} | {c['L2 code']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main())
