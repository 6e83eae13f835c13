"""Resuming a run that was killed: a real `cardloop run` process, killed with SIGKILL or interrupted with
SIGINT at random cards, then the same command again; and two runs sharing one store at the same time."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cardloop
from cardloop.examples import basic_training_loop
from cardloop.store.records import RunRecords
from tests.oracle import assert_same_weights, hand_written_loop

BATCHES, BATCH_SIZE = 40, 2  # 246 cards: long enough that the recorder flushes mid-training
LAST_STEP = f"step{BATCHES - 1}"
DEADLINE = 180.0


def loop(csv, **options):
    settings = dict(path=str(csv), input_dim=4, layers=(8,), batches=BATCHES, batch_size=BATCH_SIZE)
    return basic_training_loop(**{**settings, **options})


def run_command(pipeline_file: Path, store: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "cardloop.cli", "run", str(pipeline_file), "--store", str(store), "--threads", "1",
            "--quiet", *map(str, extra)]


def run_to_completion(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def start(command: list[str], log: Path, **options) -> subprocess.Popen:
    """A run in the background. Its output goes to files: a pipe would stay open as long as the worker the
    run started lives, so reading it after a kill would wait for the worker."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, **options)


def wait_until(process: subprocess.Popen, ready) -> bool:
    """Poll `ready()` until it holds (True) or the process ends first (False)."""
    deadline = time.monotonic() + DEADLINE
    while process.poll() is None:
        if ready():
            return True
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run neither reached the kill point nor ended")
        time.sleep(0.01)
    return False


def latest_run(records: RunRecords):
    runs = records.list_runs(1)
    return runs[0] if runs else None


def recorded(records: RunRecords) -> list:
    run = latest_run(records)
    return records.card_executions(run.run_id) if run is not None else []


def artifact_count(store: Path) -> int:
    folder = store / "artifacts"
    return sum(1 for sub in folder.iterdir() if sub.is_dir() for _ in sub.iterdir()) if folder.exists() else 0


def final_model(store: Path, run_id: str, last_step: str = LAST_STEP) -> torch.nn.Module:
    return cardloop.load_output(run_id, last_step, "model", store=store)


def worker_processes(store: Path) -> dict[int, int]:
    """Live (not zombie) `cardloop.engine.worker` processes of this store: pid -> parent pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state, parent = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if b"cardloop.engine.worker" in command and str(store).encode() in command and state != "Z":
            found[int(entry)] = int(parent)
    return found


def kill_mid_run(command: list[str], store: Path, artifacts_at_kill: int, log: Path) -> list | None:
    """Start the run and SIGKILL it once the records show training cards and the worker has written
    `artifacts_at_kill` artifacts; returns the killed run's recorded executions, or None if it ended first."""
    records = RunRecords(store / "runs.sqlite")
    process = start(command, log)
    try:
        mid_run = wait_until(process, lambda: len(recorded(records)) > 4 and artifact_count(store) >= artifacts_at_kill)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    run = latest_run(records)
    if not mid_run or run.status != "interrupted":
        return None
    return records.card_executions(run.run_id)


def test_a_run_killed_at_random_cards_resumes_to_the_same_model(tmp_path, regression_csv):
    pipeline = loop(regression_csv)
    pipeline_file = pipeline.save(tmp_path / "loop.yaml")
    reference_store = tmp_path / "reference"
    run_to_completion(run_command(pipeline_file, reference_store, "--executor", "process", "--persist", "all"))
    reference_records = RunRecords(reference_store / "runs.sqlite")
    reference_run = latest_run(reference_records).run_id
    reference = final_model(reference_store, reference_run)
    reference_losses = [m.value for m in reference_records.metrics(reference_run, "loss_value")]
    reference_metrics = cardloop.load_output(reference_run, "evaluate", "metrics", store=reference_store)
    total_artifacts = artifact_count(reference_store)

    rng = random.Random(20261125)
    resumed = 0
    for attempt in range(8):
        store = tmp_path / f"store{attempt}"
        command = run_command(pipeline_file, store, "--executor", "process", "--persist", "all")
        killed = kill_mid_run(command, store, rng.randint(total_artifacts // 3, total_artifacts * 9 // 10),
                              tmp_path / f"killed{attempt}")
        if killed is None:  # it finished before the kill: this try does not count
            continue
        run_to_completion(command)
        records = RunRecords(store / "runs.sqlite")
        rerun = latest_run(records)
        assert rerun.status == "succeeded"
        assert_same_weights(final_model(store, rerun.run_id), reference)
        assert [m.value for m in records.metrics(rerun.run_id, "loss_value")] == reference_losses
        assert cardloop.load_output(rerun.run_id, "evaluate", "metrics", store=store) == reference_metrics
        executions = records.card_executions(rerun.run_id)
        assert [e.card_id for e in executions] == [c.id for c in pipeline.cards]
        cached = {e.card_id for e in executions if e.status == "cached"}
        done_before = {e.card_id for e in killed if e.status == "done"}
        # Served from the killed run: all it recorded, but for the cards of the step it was killed in that
        # hold the lineage of a loss (batch, forward, loss) and must run again with the backward card.
        assert cached <= done_before and len(cached) >= len(done_before) - 6, (sorted(cached), sorted(done_before))
        assert sum(e.status == "done" for e in executions) == len(pipeline.cards) - len(cached) < len(pipeline.cards)
        resumed += 1
        if resumed == 3:
            break
    assert resumed == 3, "fewer than 3 of 8 runs could be killed mid-run"


def test_a_local_run_killed_without_a_checkpoint_reruns_to_the_same_model(tmp_path, regression_csv):
    """Under the default policy a killed local run leaves records but no snapshot of the training state:
    the rerun recomputes what it needs and ends with the same weights."""
    pipeline = loop(regression_csv)
    pipeline_file = pipeline.save(tmp_path / "loop.yaml")
    reference = cardloop.run(pipeline, store=tmp_path / "reference", threads=1)
    expected = final_model(tmp_path / "reference", reference.run_id)

    rng = random.Random(7)
    resumed = 0
    for attempt in range(6):
        store = tmp_path / f"store{attempt}"
        records = RunRecords(store / "runs.sqlite")
        command = run_command(pipeline_file, store)
        process = start(command, tmp_path / f"killed{attempt}")
        delay = rng.uniform(0.0, 0.3)
        try:
            mid_run = wait_until(process, lambda: len(recorded(records)) > 0)
            time.sleep(delay)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        if not mid_run or latest_run(records).status != "interrupted":
            continue
        run_to_completion(command)
        rerun = latest_run(records)
        assert rerun.status == "succeeded"
        assert_same_weights(final_model(store, rerun.run_id), expected)
        assert {e.status for e in records.card_executions(rerun.run_id)} <= {"done", "cached"}
        assert len(records.card_executions(rerun.run_id)) == len(pipeline.cards)
        resumed += 1
        if resumed == 2:
            break
    assert resumed == 2, "fewer than 2 of 6 local runs could be killed mid-run"


def test_the_worker_of_a_killed_run_exits_when_its_socket_closes(tmp_path, regression_csv, store):
    pipeline_file = loop(regression_csv).save(tmp_path / "loop.yaml")
    records = RunRecords(store / "runs.sqlite")
    process = start(run_command(pipeline_file, store, "--executor", "process"), tmp_path / "killed")
    try:
        assert wait_until(process, lambda: len(recorded(records)) > 0 and worker_processes(store)), \
            "the run ended before it started its worker and recorded a card"
        workers = worker_processes(store)
        assert list(workers.values()) == [process.pid]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert latest_run(records).status == "interrupted"  # killed mid-run: nothing closed it, nothing holds its lock
    # the worker ends the card it is in (on a busy machine, say, still importing torch) and then exits: the
    # deadline only bounds a worker that never would
    deadline = time.monotonic() + DEADLINE
    while worker_processes(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    lingering = worker_processes(store)
    for pid in lingering:  # do not leave it running if the check fails
        os.kill(pid, signal.SIGKILL)
    assert not lingering, f"worker {sorted(lingering)} still runs {DEADLINE:.0f} s after its run was killed"


def test_ctrl_c_exits_130_says_how_to_resume_and_the_same_command_resumes(tmp_path, regression_csv, store):
    pipeline = loop(regression_csv, prepare=False, batches=100, batch_size=1)  # 606 cards: Ctrl-C lands mid-run
    pipeline_file = pipeline.save(tmp_path / "loop.yaml")
    command = run_command(pipeline_file, store, "--executor", "process", "--persist", "all")
    records = RunRecords(store / "runs.sqlite")
    # Ctrl-C in a terminal signals the whole foreground process group: the run and its worker.
    process = start(command, tmp_path / "interrupted", start_new_session=True)
    try:
        assert wait_until(process, lambda: len(recorded(records)) > 4), "the run ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    stderr = " ".join((tmp_path / "interrupted.err").read_text().split())
    assert "interrupted after card" in stderr and "run the same command again to resume" in stderr, stderr
    assert "Traceback" not in stderr
    interrupted = latest_run(records)
    assert interrupted.status == "cancelled"

    done = run_to_completion(command)
    assert "succeeded" in done.stdout
    rerun = latest_run(records)
    assert rerun.run_id != interrupted.run_id
    assert any(e.status == "cached" for e in records.card_executions(rerun.run_id))
    expected = hand_written_loop(regression_csv, batches=100, batch_size=1, layers=[8])
    assert_same_weights(final_model(store, rerun.run_id, "step99"), expected)


ORACLE_OPTIONS = [dict(optimizer_type="sgd", learning_rate=0.05, loss_type="huber"),
                  dict(optimizer_type="adam", learning_rate=0.01, loss_type="mse", gradient_clip=0.5)]


@pytest.mark.parametrize("executor, same_pipeline", [("local", False), ("process", True)])
def test_two_runs_sharing_a_store_at_the_same_time_both_complete(tmp_path, regression_csv, store, executor,
                                                               same_pipeline):
    batches = 10
    chosen = [ORACLE_OPTIONS[0]] * 2 if same_pipeline else ORACLE_OPTIONS
    pipelines = [basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False,
                                     batches=batches, batch_size=10, **options) for options in chosen]
    files = [p.save(tmp_path / f"loop{i}.yaml") for i, p in enumerate(pipelines)]
    extra = ("--executor", executor, "--persist", "all")
    processes = [start(run_command(file, store, *extra), tmp_path / f"run{i}") for i, file in enumerate(files)]
    for i, process in enumerate(processes):
        assert process.wait(timeout=300) == 0, (tmp_path / f"run{i}.err").read_text()

    records = RunRecords(store / "runs.sqlite")
    runs = records.list_runs(10)
    assert len(runs) == 2 and {r.status for r in runs} == {"succeeded"}
    for run in runs:
        pipeline = next(p for p in pipelines if p.to_dict() == run.pipeline)
        options = chosen[pipelines.index(pipeline)]
        executions = records.card_executions(run.run_id)
        assert [e.card_id for e in executions] == [c.id for c in pipeline.cards]
        assert {e.status for e in executions} <= {"done", "cached"}
        assert len(records.metrics(run.run_id, "loss_value")) == batches
        expected = hand_written_loop(regression_csv, batches=batches, batch_size=10, layers=[8], **options)
        assert_same_weights(cardloop.load_output(run.run_id, f"step{batches - 1}", "model", store=store), expected)


def test_a_resumed_run_counts_optimizer_steps_as_an_uninterrupted_run(tmp_path, regression_csv):
    pipeline = loop(regression_csv, batches=4, prepare=False)
    whole = cardloop.run(pipeline, store=tmp_path / "whole", threads=1)
    cardloop.run(pipeline, store=tmp_path / "resumed", threads=1, until="step1")  # as if stopped after step1
    resumed = cardloop.run(pipeline, store=tmp_path / "resumed", threads=1)
    assert "step1" in resumed.cached and "step2" in resumed.executed
    assert_same_weights(cardloop.load_output(resumed.run_id, "step3", "model", store=tmp_path / "resumed"),
                        cardloop.load_output(whole.run_id, "step3", "model", store=tmp_path / "whole"))

    def steps(result, store):
        return [cardloop.load_output(result.run_id, f"step{i}", "step_info", store=store)["step"] for i in range(4)]

    assert steps(whole, tmp_path / "whole") == [1, 2, 3, 4]
    assert steps(resumed, tmp_path / "resumed") == [1, 2, 3, 4]


LOOP_RUN = """
import sys, torch
import cardloop
torch.set_num_threads(1)
cardloop.run(sys.argv[1], store=sys.argv[2], checkpoint_seconds=0.05)
"""

KILLED_AT = """
import os, signal, sys, time
import torch
import cardloop
from cardloop.cards import training_loop
from cardloop.store.records import RunRecords

torch.set_num_threads(1)
training_loop.REPORT_SECONDS = 0.0  # every step reports
pipeline, store, card, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
records = os.path.join(store, "runs.sqlite")


def progress(event):
    # a step's checkpoint is queued before the step reports: once the writer has stored it, the process dies there
    if event.kind == "progress" and event.card_id == card and event.step == at:
        while not (os.path.exists(records) and RunRecords(records).last_progress_step(card) == at):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)


cardloop.run(pipeline, store=store, checkpoint_seconds=0, progress=progress)
"""


def killed_at(path: Path, store: Path, card: str, at: int) -> None:
    """Run the pipeline file in a process that checkpoints its training_loop card `card` after every step and
    SIGKILLs itself once the checkpoint after step `at` is stored: the kill lands there whatever the machine's
    speed (no poll races the loop to its end)."""
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, str(path), str(store), card, str(at)],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with RunRecords(store / "runs.sqlite") as records:
        assert latest_run(records).status == "interrupted"
        assert records.last_progress_step(card) == at


def test_a_run_killed_inside_a_training_loop_card_goes_on_from_its_last_checkpoint(tmp_path, regression_csv):
    from cardloop.examples import training_loop

    pipeline = training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False, epochs=600,
                             batch_size=16, learning_rate=0.001)  # 4200 steps
    pipeline.card("model").config["dropout"] = 0.2
    path = pipeline.save(tmp_path / "loop.yaml")
    store, step = tmp_path / "store", 700
    killed_at(path, store, "loop", step)

    events = []
    resumed = cardloop.run(path, store=store, threads=1, progress=events.append)
    whole = cardloop.run(path, store=tmp_path / "whole", threads=1)
    assert "loop" in resumed.executed
    assert next(e.step for e in events if e.kind == "progress") == step + 1  # it went on from the checkpoint
    assert_same_weights(resumed.outputs["loop"]["model"], whole.outputs["loop"]["model"])
    assert resumed.metrics("loss_value") == whole.metrics("loss_value")
    assert resumed.outputs["loop"]["loop_info"]["optimizer_steps"] == 4200


def killed_after_a_checkpoint(tmp_path: Path, path: Path, store: Path, executor: str) -> int:
    """Run the pipeline file in a process with the executor, SIGKILL it once it has stored a checkpoint inside a
    card (a training_loop's step, a block's iteration); the step of the last one. (The process executor's
    blocks: 300 epochs of several seconds, which a poll every 10 ms does not race to their end.)"""
    run = LOOP_RUN.replace("checkpoint_seconds=0.05", f"checkpoint_seconds=0.05, executor={executor!r}")
    process = start([sys.executable, "-c", run, str(path), str(store)], tmp_path / "killed")

    def checkpointed() -> bool:
        return (store / "runs.sqlite").exists() and bool(RunRecords(store / "runs.sqlite").cache_keys_with_progress())

    assert wait_until(process, checkpointed), "the run ended before it left a checkpoint"
    process.send_signal(signal.SIGKILL)
    process.wait()
    with RunRecords(store / "runs.sqlite") as records:
        assert latest_run(records).status == "interrupted"
        return max(records.latest_card_progress(key)[0] for key in records.cache_keys_with_progress())


def test_a_run_killed_inside_a_training_loop_with_a_scheduler_goes_on_with_the_exact_schedule(tmp_path,
                                                                                              regression_csv):
    from cardloop.examples import training_loop

    pipeline = training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False, epochs=600,
                             batch_size=16, learning_rate=0.01)  # 4200 steps
    schedule = pipeline.add("training_lr_scheduler", "sched", optimizer=pipeline.card("opt")["optimizer"],
                            scheduler_type="warmup_cosine", warmup_steps=300, T_max=3900, start_factor=0.01)
    pipeline.cards.remove(schedule)
    pipeline.cards.insert(pipeline.cards.index(pipeline.card("loop")), schedule)
    pipeline.card("loop").inputs["scheduler"] = str(schedule["scheduler"])
    path = pipeline.save(tmp_path / "loop.yaml")
    store, step = tmp_path / "store", 700
    killed_at(path, store, "loop", step)

    events = []
    resumed = cardloop.run(path, store=store, threads=1, progress=events.append)
    whole = cardloop.run(path, store=tmp_path / "whole", threads=1)
    assert next(e.step for e in events if e.kind == "progress") == step + 1  # it went on from the checkpoint
    assert_same_weights(resumed.outputs["loop"]["model"], whole.outputs["loop"]["model"])
    assert resumed.metrics("lr") == whole.metrics("lr") and len(whole.metrics("lr")) == 4200
    assert resumed.metrics("loss_value") == whole.metrics("loss_value")
    assert resumed.outputs["loop"]["scheduler"].state_dict() == whole.outputs["loop"]["scheduler"].state_dict()


def test_a_process_run_killed_in_an_epoch_with_a_scheduler_step_goes_on_bit_identically(tmp_path, regression_csv):
    from tests.schedulers import blocks

    epochs = 300  # 2100 steps
    pipeline = blocks(regression_csv, "warmup_cosine", epochs=epochs,
                      config={"warmup_steps": 70, "T_max": 2030, "start_factor": 0.01})
    path = pipeline.save(tmp_path / "blocks.yaml")
    store = tmp_path / "store"
    assert 0 <= killed_after_a_checkpoint(tmp_path, path, store, "process") < epochs

    resumed = cardloop.run(path, store=store, threads=1, executor="process")
    whole = cardloop.run(path, store=tmp_path / "whole", threads=1)
    with RunRecords(store / "runs.sqlite") as records:
        stats = {row.path: row for row in records.iteration_cards(resumed.run_id)}
    assert stats["epochs.batches.sched_step"].executions < 7 * epochs  # the killed run's epochs were taken up
    mine, theirs = resumed.outputs["epochs"], whole.outputs["epochs"]
    assert_same_weights(mine["model"], theirs["model"])
    assert mine["lr"] == theirs["lr"] and len(mine["lr"]) == epochs
    assert mine["scheduler"].state_dict() == theirs["scheduler"].state_dict()
