"""Where the pipeline's extra time per step comes from, part by part (diabetes MLP, batch 32, 1 thread).

    .venv/bin/python benchmarks/bench_parts.py [--reps N]

1. cards: each training card's run function against the bare torch calls it makes, in tight loops;
2. executor: the local executor over the 2000-step plan with every card's run function replaced by one that
   returns a constant, without and with the run recorder (hook, writer thread and writer process);
3. in place: the hand loop with pure-Python busy work between its torch calls, against the busy work's own
   time: how much a microsecond of interpreter work costs inside a training step;
4. ceiling: how fast six card calls per step can be at all. The hand loop alternates with the six run
   functions called directly (shared configs, nothing else), with what a code-generating executor would
   still do (each card's own config, a timing per card, outputs kept in slots), and with the LocalExecutor.
Best of --reps repetitions (median beside it for part 3). See benchmarks/README.md. Changes nothing in cardloop.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from bench_data import write_diabetes
from bench_local import TRAINING_CARDS, Case, make_model, pipeline_for

from cardloop.cards import training as T
from cardloop.cards.data import DataLoadConfig
from cardloop.cards.registry import default_registry
from cardloop.cards.spec import NoConfig
from cardloop.engine.events import RunHooks
from cardloop.engine.local import LocalExecutor
from cardloop.engine.persist import PersistPolicy
from cardloop.engine.plan import plan_pipeline
from cardloop.engine.recorder import RunRecorder
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.records import RunRecords

STEPS = 2000
CASE = Case("diabetes 10-64-64-1", "diabetes", None, 10, (64, 64), {})


def best_us(call, n: int, reps: int) -> float:
    """µs per call of `call(i)` for i in range(n), best of `reps`."""
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        for i in range(n):
            call(i)
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


class _Context:
    def source(self, port: str) -> str:
        return "loss"


def cards_part(frame, reps: int) -> list[tuple[str, float, float]]:
    """(card, µs per call of its run function, µs of the bare torch calls)."""
    run = {t: default_registry().get(t).run for t in TRAINING_CARDS}
    model = make_model(CASE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    configs = [T.PrepareBatchConfig(batch_index=i) for i in range(STEPS)]
    batch = run["training_prepare_batch"](config=configs[0], train_dataset=frame)["batch_data"]
    predictions = model(batch.X)
    forward, loss, backward, step = T.ForwardConfig(), T.LossConfig(), T.BackwardConfig(), T.OptimizerStepConfig()

    def backward_card(i):
        run["training_backward"](config=backward, loss=F.mse_loss(model(batch.X), batch.y), model=model, ctx=_Context())

    pairs = {
        "training_prepare_batch": (lambda i: run["training_prepare_batch"](config=configs[i], train_dataset=frame),
                                   lambda i: (batch.X[0:32], batch.y[0:32])),
        "training_zero_grad": (lambda i: run["training_zero_grad"](config=NoConfig(), optimizer=opt),
                               lambda i: opt.zero_grad()),
        "training_forward": (lambda i: run["training_forward"](config=forward, model=model, batch_data=batch),
                             lambda i: model(batch.X)),
        "training_loss": (lambda i: run["training_loss"](config=loss, predictions=predictions, batch_data=batch),
                          lambda i: F.mse_loss(predictions, batch.y).item()),
        "training_backward": (backward_card, lambda i: F.mse_loss(model(batch.X), batch.y).backward()),
        "training_optimizer_step": (lambda i: run["training_optimizer_step"](config=step, optimizer=opt, model=model),
                                    lambda i: opt.step()),
    }
    return [(name, best_us(card, 500, reps), best_us(bare, 500, reps)) for name, (card, bare) in pairs.items()]


def executor_part(plan, root: Path, reps: int) -> tuple[float, float]:
    """µs per step of the executor loop with constant-returning cards: (no listener, with the run recorder)."""
    registry = default_registry()
    saved = {t.id: t.run for t in registry}
    marks: dict[str, float] = {}
    outputs = {t.id: {p.name: 1 for p in t.outputs} for t in registry}
    outputs["data_load"] = {"dataset": pd.DataFrame({"a": [1.0]})}  # the recorder summarizes a table's shape

    def constant(type_id):
        found = outputs[type_id]

        def first(**kwargs):
            marks.setdefault("first", time.perf_counter())
            return found

        def last(**kwargs):
            marks["last"] = time.perf_counter()
            return found

        return {"training_prepare_batch": first, "training_optimizer_step": last}.get(type_id, lambda **kw: found)

    for type_id in saved:
        object.__setattr__(registry.get(type_id), "run", constant(type_id))
    try:
        results = {}
        for recorded in (False, True):
            times = []
            for rep in range(reps):
                marks.clear()
                hooks, recorder = RunHooks([]), None
                if recorded:
                    store = root / f"parts-{rep}"
                    records = RunRecords(store / "runs.sqlite")
                    records.start_run("r", name="parts", pipeline={})
                    recorder = RunRecorder(plan, ArtifactStore(store, durable=False), records,
                                           PersistPolicy.named("checkpoint"), "r", [None] * plan.slot_count)
                    hooks = RunHooks([recorder])
                gc.collect()
                LocalExecutor().run(plan, hooks)
                times.append(marks["last"] - marks["first"])
                if recorder is not None:
                    hooks.run_finished("succeeded", None)
            results[recorded] = min(times) / STEPS * 1e6
        return results[False], results[True]
    finally:
        for type_id, run in saved.items():
            object.__setattr__(registry.get(type_id), "run", run)


def busy(n: int) -> int:
    total = 0
    for k in range(n):
        total += k
    return total


def in_place_part(X, y, reps: int, work: int = 40) -> tuple[float, float, float]:
    """(µs of the busy work per step alone, extra µs per step it adds to the hand loop: best, median)."""
    alone = best_us(lambda i: [busy(work) for _ in range(6)], STEPS, reps)

    def loop(n: int) -> float:
        model = make_model(CASE)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        started = time.perf_counter()
        for i in range(STEPS):
            xb, yb = X[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]
            busy(n)
            opt.zero_grad()
            busy(n)
            predictions = model(xb)
            busy(n)
            loss = F.mse_loss(predictions, yb)
            loss.item()
            busy(n)
            loss.backward()
            busy(n)
            opt.step()
            busy(n)
        return time.perf_counter() - started

    plain, busy_runs = [], []
    for rep in range(reps):
        for n in ((0, work) if rep % 2 == 0 else (work, 0)):
            gc.collect()
            (plain if n == 0 else busy_runs).append(loop(n))
    extra_best = (min(busy_runs) - min(plain)) / STEPS * 1e6
    extra_median = (statistics.median(busy_runs) - statistics.median(plain)) / STEPS * 1e6
    return alone, extra_best, extra_median


def card_functions() -> tuple:
    """The six training cards' run functions, in the order of a step."""
    return tuple(default_registry().get(t).run for t in TRAINING_CARDS)


def six_card_step(functions: tuple, configs: list, frame, model, opt, context) -> None:
    """One training step as the six training cards' run functions called directly, with these configs."""
    prepare, zero, forward, loss, backward, step = functions
    b = prepare(config=configs[0], train_dataset=frame)["batch_data"]
    zero(config=configs[1], optimizer=opt)
    f = forward(config=configs[2], model=model, batch_data=b)["predictions"]
    ls = loss(config=configs[3], predictions=f, batch_data=b)["loss"]
    backward(config=configs[4], loss=ls, model=model, ctx=context)
    step(config=configs[5], optimizer=opt, model=model)


def ceiling_part(frame, plan, X, y, reps: int) -> list[tuple[str, float, float]]:
    """(variant, µs per step best, median) for the hand loop and three ways of calling the six cards."""
    from array import array

    from bench_local import executor_alone, hand_loop

    functions = card_functions()
    prepare, zero, forward, loss, backward, step = functions
    steps = [plan.cards[k:k + 6] for k in range(3, len(plan.cards), 6)]  # after data, model and optimizer
    shared = [pc.config for pc in steps[0]]
    context = plan.context(steps[0][4])

    def cards(own_configs: bool) -> float:
        model = make_model(CASE)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.0)
        slots = [None] * plan.slot_count
        times = array("d", bytes(8 * 12 * len(steps)))
        clock = time.perf_counter
        started = clock()
        for i, six in enumerate(steps):
            c = [pc.config for pc in six] if own_configs else [six[0].config, *shared[1:]]
            if own_configs:
                t0 = clock(); b = prepare(config=c[0], train_dataset=frame)
                t1 = clock(); zero(config=c[1], optimizer=opt)
                t2 = clock(); f = forward(config=c[2], model=model, batch_data=b["batch_data"])
                t3 = clock(); ls = loss(config=c[3], predictions=f["predictions"], batch_data=b["batch_data"])
                t4 = clock(); bw = backward(config=c[4], loss=ls["loss"], model=model, ctx=context)
                t5 = clock(); st = step(config=c[5], optimizer=opt, model=model)
                times[12 * i:12 * i + 12] = array("d", (t0, t1 - t0, t1, t2 - t1, t2, t3 - t2, t3, t4 - t3, t4,
                                                        t5 - t4, t5, clock() - t5))
                for pc, out, name in ((six[0], b, "batch_info"), (six[3], ls, "loss_value"),
                                      (six[4], bw, "gradients_computed"), (six[5], st, "step_info")):
                    slots[pc.output_slots[name]] = out[name]  # the outputs no card reads stay, as in a run
            else:
                six_card_step(functions, c, frame, model, opt, context)
        return clock() - started

    variants = {"hand loop": lambda: hand_loop(X, y, CASE, STEPS)[0],
                "the six run functions called directly": lambda: cards(False),
                "+ each card's own config, a timing per card, outputs in slots": lambda: cards(True),
                "LocalExecutor (one timing listener, no recorder)": lambda: executor_alone(plan, 1)[0]}
    for variant in variants.values():
        variant()  # warm-up, and the frame's tensors made once
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(reps):
        for name in (list(variants) if rep % 2 == 0 else list(variants)[::-1]):
            gc.collect()
            times[name].append(variants[name]() / STEPS * 1e6)
    return [(name, min(t), statistics.median(t)) for name, t in times.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="cardloop-parts-") as folder:
        root = Path(folder)
        path = write_diabetes(root, 150)
        frame = default_registry().get("data_load").run(config=DataLoadConfig(path=str(path)))["dataset"]
        tensors = T.FrameTensors(frame, None)
        plan = plan_pipeline(pipeline_for(CASE._replace(path=path), STEPS))

        print("| card | run function µs | bare torch calls µs | overhead µs |\n|---|---:|---:|---:|")
        total = 0.0
        for name, card, bare in cards_part(frame, args.reps):
            total += card - bare
            print(f"| {name} | {card:.2f} | {bare:.2f} | {card - bare:+.2f} |")
        print(f"| the six | | | {total:+.2f} |\n")

        bare_us, recorded_us = executor_part(plan, root, args.reps)
        print(f"executor loop with constant cards ({len(plan.cards)} cards): {bare_us:.2f} µs per step; "
              f"with the run recorder: {recorded_us:.2f} (+{recorded_us - bare_us:.2f})\n")

        alone, extra_best, extra_median = in_place_part(tensors.X, tensors.y, args.reps)
        print(f"busy work between the hand loop's torch calls: {alone:.1f} µs per step alone; it adds "
              f"{extra_best:.1f} µs (best) / {extra_median:.1f} µs (median) per step to the loop\n")

        rows = ceiling_part(frame, plan, tensors.X, tensors.y, args.reps)
        hand_best, hand_median = rows[0][1], rows[0][2]
        print("| six cards per step | µs per step, best | median | ratio to the hand loop, best | median |\n"
              "|---|---:|---:|---:|---:|")
        for name, best, median in rows:
            print(f"| {name} | {best:.1f} | {median:.1f} | {hand_best / best:.3f} | {hand_median / median:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
