"""The gradient accumulation examples (src/cardloop/example_accumulation.py): the committed files are what the
generator writes; both train bit for bit as the hand-written PyTorch accumulation loop, and as each other; the
loop-block recipe does so on both executors and after a kill inside an accumulation window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cardloop
from cardloop.example_accumulation import accumulation_blocks
from cardloop.pipeline.fileformat import load_pipeline
from cardloop.pipeline.model import Card
from cardloop.store.records import RunRecords
from tests.accumulation import hand_accumulation_loop
from tests.oracle import assert_same_weights

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = ("gradient_accumulation.yaml", "gradient_accumulation_loop.yaml")
#: the examples' settings: 354 training rows in shuffled batches of 8 (45 a pass, the last of 2 rows)
EXAMPLE = dict(accumulate=4, epochs=3, batch_size=8, layers=[64, 64], learning_rate=0.01, shuffle=True, seed=0)


def test_the_committed_files_are_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)], check=True,
                   capture_output=True)
    for name in FILES:
        assert (tmp_path / name).read_text() == (EXAMPLES / name).read_text(), \
            f"examples/{name} is out of date: run python examples/make_examples.py"


def test_the_blocks_example_steps_every_four_batches_and_at_each_epoch_s_end(store):
    pipeline = load_pipeline(EXAMPLES / FILES[0])
    batches = pipeline.card("epochs").body.cards[1].body
    assert [c.type for c in batches.cards] == ["training_forward", "training_loss", "training_backward",
                                               "training_optimizer_step", "training_zero_grad"]
    assert batches.cards[1].config["scale"] == 0.25
    result = cardloop.run(pipeline, store=store, keep_outputs=True)
    model, losses, steps = hand_accumulation_loop(result.outputs["normalize"]["train_dataset"], **EXAMPLE)
    assert_same_weights(result.outputs["epochs"]["model"], model)
    assert [loss for epoch in result.outputs["epochs"]["loss"] for loss in epoch] == losses
    stats = {row.path: row for row in RunRecords(store / "runs.sqlite").iteration_cards(result.run_id)}
    step = stats["epochs.batches.step"]
    assert (step.executions, step.executions - step.skipped) == (135, steps) and steps == 3 * 12  # 11 + leftover
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.2


def test_the_loop_example_trains_as_the_blocks_example_bit_for_bit(store):
    looped = cardloop.run(load_pipeline(EXAMPLES / FILES[1]), store=store / "loop", keep_outputs=True)
    model, losses, steps = hand_accumulation_loop(looped.outputs["normalize"]["train_dataset"], **EXAMPLE)
    assert_same_weights(looped.outputs["loop"]["model"], model)
    assert looped.metrics("loss_value") == losses
    info = looped.outputs["loop"]["loop_info"]
    assert (info["steps"], info["micro_batches"], info["accumulate"]) == (steps, 135, 4)
    blocks = cardloop.run(load_pipeline(EXAMPLES / FILES[0]), store=store / "blocks")
    assert_same_weights(blocks.outputs["epochs"]["model"], looped.outputs["loop"]["model"])
    assert looped.outputs["evaluate"]["metrics"] == blocks.outputs["evaluate"]["metrics"]


def recipe(csv, **options):
    """The loop-block recipe on the test file: 13 batches of 8 a pass in windows of 3 (a leftover of 1)."""
    settings = dict(path=str(csv), input_dim=4, layers=(8,), prepare=False, accumulate=3, epochs=2, batch_size=8,
                    learning_rate=0.01, gradient_clip=0.5, shuffle=True, seed=3)
    return accumulation_blocks(**{**settings, **options})


def hand(csv, **options):
    return hand_accumulation_loop(csv, **{**dict(accumulate=3, epochs=2, batch_size=8, layers=[8],
                                                 learning_rate=0.01, gradient_clip=0.5, shuffle=True, seed=3),
                                          **options})


@pytest.mark.parametrize("executor", ["local", "process"])
def test_the_recipe_trains_bit_for_bit_as_the_hand_written_loop(regression_csv, store, executor):
    result = cardloop.run(recipe(regression_csv), store=store, executor=executor)
    model, losses, _ = hand(regression_csv)
    assert_same_weights(result.outputs["epochs"]["model"], model)
    assert [loss for epoch in result.outputs["epochs"]["loss"] for loss in epoch] == losses


KILLER = '''
import os, signal, sqlite3, time
from pathlib import Path
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.kinds import SCALAR


class KillConfig(CardConfig):
    epoch: int = 1
    batch: int = 4
    marker: str = ""
    records: str = ""


@card("test_kill_in_window", title="Kill in a window", category="test",
      inputs=[Port("epoch", SCALAR), Port("batch", SCALAR)], outputs=[Port("batch", SCALAR)], config=KillConfig)
def kill_in_window(config, epoch, batch):
    """SIGKILL its own process at batch `batch` of epoch `epoch`, the first time only (the marker file says it
    happened), once the checkpoints of the epochs before are in the run records."""
    if (epoch, batch) == (config.epoch, config.batch) and not Path(config.marker).exists():
        for _ in range(6000):
            with sqlite3.connect(config.records) as db:
                if db.execute("SELECT count(*) FROM card_progress").fetchone()[0] >= config.epoch:
                    break
            time.sleep(0.01)
        Path(config.marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"batch": batch}
'''


def test_a_run_killed_inside_a_window_goes_on_from_the_epoch_before_bit_for_bit(regression_csv, store, tmp_path):
    """Killed after batches 3 and 4 of epoch 1 went into the window of batches 3-5: the rerun takes up the end of
    epoch 0 (whose last window stepped and cleared the gradients) and ends as the hand-written loop does."""
    cards = tmp_path / "killer.py"
    cards.write_text(KILLER)
    pipeline = recipe(regression_csv)
    marker = tmp_path / "killed"
    batches = pipeline.card("epochs").body.cards[1]
    batches.inputs["epoch"] = "epochs.iteration"
    batches.body.cards.append(Card(id="kill", type="test_kill_in_window",
                                   inputs={"epoch": "batches.epoch", "batch": "batches.iteration"},
                                   config={"epoch": 1, "batch": 4, "marker": str(marker),
                                           "records": str(store / "runs.sqlite")}))
    path = pipeline.save(tmp_path / "killed.yaml")
    command = [sys.executable, "-m", "cardloop.cli", "run", str(path), "--store", str(store), "--threads", "1",
               "--quiet", "--cards", str(cards)]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9 and marker.exists()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    records = RunRecords(store / "runs.sqlite")
    last = records.list_runs(1)[0]
    stats = {row.path: row for row in records.iteration_cards(last.run_id)}
    assert stats["epochs.batches.fwd"].executions == 13  # epoch 1 only: epoch 0 came from the killed run
    model, losses, _ = hand(regression_csv)
    assert_same_weights(cardloop.load_output(last.run_id, "epochs", "model", store=store), model)
    assert [x for epoch in cardloop.load_output(last.run_id, "epochs", "loss", store=store) for x in epoch] == losses
