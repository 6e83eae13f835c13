"""`cardloop show` of loop blocks, run as a user runs it: a block's summary under the run's cards, a body card over
every iteration and in one iteration, and sentences for paths the run lacks."""

import time

import pytest

from cardloop.store.records import CardExecution, RunRecords
from tests.blocks import hand_written_losses, nested_pipeline, steps_pipeline
from tests.test_cli import cli, in_one_process, latest_run, one_line

EVERY_SECOND = {"every": 2, "of": "batches"}


@pytest.fixture
def nested_run(tmp_path, regression_csv, store):
    """A CLI run of 2 epochs x 3 batches whose optimizer step runs in every second batch; its run id."""
    file = nested_pipeline(regression_csv, when=EVERY_SECOND).save(tmp_path / "nested.yaml")
    done = cli("run", file, "--store", store, "--quiet", "--threads", "1")
    assert done.returncode == 0, done.stderr
    return latest_run(store).run_id


def rows(text):
    return [line.split() for line in text.splitlines()]


def test_show_run_keeps_the_top_level_rows_and_summarizes_each_block(nested_run, store):
    shown = cli("show", nested_run, "--store", store)
    assert shown.returncode == 0, shown.stderr
    lines = rows(shown.stdout)
    assert ["5", "epochs", "loop", "done"] == next(line for line in lines if line[1:2] == ["epochs"])[:4]
    assert "block epochs: iterations epochs 2, epochs.batches 6" in shown.stdout
    step = next(line for line in lines if line[0] == "epochs.batches.step")
    assert step[1:4] == ["training_optimizer_step", "2", "4"]  # 2 done, 4 skipped
    assert "mean per iteration of epochs:" in shown.stdout
    per_epoch = [line for line in lines if line[0] in ("1", "2") and len(line) == 3]
    assert len(per_epoch) == 2 and all(float(cell) > 0 for line in per_epoch for cell in line[1:])


def test_show_a_static_path_describes_the_card_over_every_iteration(nested_run, store):
    shown = one_line(cli("show", nested_run, "epochs.batches.step", "--store", store).stdout)
    assert "epochs.batches.step (training_optimizer_step)" in shown and "6 executions, 2 done, 4 skipped" in shown
    loss = one_line(cli("show", nested_run, "epochs.batches.loss", "--store", store).stdout)
    assert "loss_value: 6 values, first" in loss and "min" in loss


def test_show_one_iteration_gives_its_status_seconds_and_the_loss_the_hand_written_loop_computes(tmp_path,
                                                                                                regression_csv, store):
    file = steps_pipeline(regression_csv, times=5).save(tmp_path / "steps.yaml")
    assert cli("run", file, "--store", store, "--quiet", "--threads", "1").returncode == 0
    run_id = latest_run(store).run_id
    shown = one_line(cli("show", run_id, "steps[3].loss", "--store", store).stdout)
    assert f"steps[3].loss (training_loss) in run {run_id}: done" in shown
    value = float(shown.split("loss_value: ")[1].split()[0])
    assert value == pytest.approx(hand_written_losses(regression_csv, 5)[3], rel=1e-5)


def test_show_a_skipped_iteration_says_skipped(nested_run, store):
    shown = cli("show", nested_run, "epochs[1].batches[2].step", "--store", store)
    assert shown.returncode == 0 and "skipped" in shown.stdout and "loss_value" not in shown.stdout


def test_show_one_iteration_shows_its_stored_outputs_when_the_run_kept_them(nested_run, store):
    with RunRecords(store / "runs.sqlite") as records:
        records.add_card_executions([CardExecution(
            nested_run, "epochs[1].batches[2].loss", 99, "training_loss", "done", time.time(), 0.001,
            outputs={"loss_value": {"kind": "scalar", "digest": None, "summary": 0.4321}})])
    shown = cli("show", nested_run, "epochs[1].batches[2].loss", "--store", store).stdout
    assert "loss_value [scalar]" in shown and "0.4321" in shown


@pytest.mark.parametrize(("path", "said"), [
    ("epochs[1].batches[9].loss", "has no 'epochs[1].batches[9].loss': loop 'epochs.batches' ran 3 iteration(s) in "
                                  "epochs[1] (0 to 2)"),
    ("epochs[5].batches[0].loss", "loop 'epochs' ran 2 iteration(s) (0 to 1)"),
    ("epochs.batches.los", "has no body card 'epochs.batches.los' in block 'epochs'; did you mean"),
    ("epochs[1].batches.loss", "gives no iteration for block(s) 'batches'"),
])
def test_a_path_the_run_lacks_is_one_sentence_and_exit_code_1(nested_run, store, path, said):
    done = cli("show", nested_run, path, "--store", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert said in one_line(done.stderr)


def test_show_of_a_block_run_and_of_its_paths_imports_no_torch(nested_run, store):
    commands = [["show", nested_run, "--store", str(store)],
                ["show", nested_run, "epochs.batches.loss", "--store", str(store)],
                ["show", nested_run, "epochs[1].batches[2].loss", "--store", str(store)]]
    done = in_one_process(f"for args in {commands!r}:\n"
                          "    app(args, standalone_mode=False)\n"
                          "    assert 'torch' not in sys.modules, f'cardloop {args} imported torch'\n"
                          "print('no torch')\n")
    assert done.stdout.rstrip().endswith("no torch")
