"""The CLI's progress bar follows run events: cards done of total, the current card (with a long card's
step), the latest loss."""

import io

from rich.console import Console

from cardloop.cli_display import RunProgress, print_columns
from cardloop.engine.events import CardEvent


def test_the_bar_shows_cards_done_the_current_card_its_step_and_the_latest_loss():
    bar = RunProgress(Console(file=io.StringIO()), enabled=False)
    with bar:
        bar.on_event(CardEvent("run_started", "r1", 3))
        bar.on_event(CardEvent("started", "r1", 3, "data", "data_load"))
        bar.on_event(CardEvent("done", "r1", 3, "data", "data_load", seconds=0.1))
        bar.on_event(CardEvent("started", "r1", 3, "loop", "training_loop"))
        bar.on_event(CardEvent("progress", "r1", 3, "loop", "training_loop", metrics={"loss_value": 0.123456},
                               step=40, steps=90))
        task = bar.progress.tasks[0]
        assert task.description == "loop (training_loop) step 40/90"
        assert task.completed == 1 and task.total == 3 and task.fields["loss"] == "loss 0.1235"
        bar.on_event(CardEvent("done", "r1", 3, "loop", "training_loop", metrics={"loss_value": 0.1}))
        bar.on_event(CardEvent("run_finished", "r1", 3, status="succeeded"))
        assert task.completed == 2 and task.fields["loss"] == "loss 0.1"
        assert task.description == "run r1: succeeded"


ROWS = [("1", "data", "data_load", "dataset: table 100 rows x 5 columns"),
        ("10", "fwd12", "training_forward", "predictions: tensor; model: model")]


def test_columns_line_up_and_a_wide_console_keeps_each_row_on_one_line():
    console = Console(file=io.StringIO(), width=4096)
    print_columns(console, ("#", "card", "type", "outputs"), ROWS)
    lines = console.file.getvalue().splitlines()
    assert lines == ["#   card   type              outputs",
                     "1   data   data_load         dataset: table 100 rows x 5 columns",
                     "10  fwd12  training_forward  predictions: tensor; model: model"]


def test_on_a_narrow_console_the_last_column_wraps_under_itself():
    console = Console(file=io.StringIO(), width=56)
    print_columns(console, ("#", "card", "type", "outputs"), ROWS)
    lines = console.file.getvalue().splitlines()
    assert lines[1:] == ["1   data   data_load         dataset: table 100 rows x 5",
                         "                             columns",
                         "10  fwd12  training_forward  predictions: tensor; model:",
                         "                             model"]


def body(kind, path, card_type, **fields):
    """A body card's event, as the engine sends it: its card id is the iteration path, it has no position."""
    return CardEvent(kind, "r1", 3, path, card_type, **fields)


def test_body_card_events_never_advance_the_count_of_cards():
    bar = RunProgress(Console(file=io.StringIO()), enabled=False)
    with bar:
        bar.on_event(CardEvent("run_started", "r1", 3))
        bar.on_event(CardEvent("started", "r1", 3, "epochs", "loop", position=1))
        for batch in range(4):
            bar.on_event(body("started", f"epochs[0].batches[{batch}].fwd", "training_forward"))
            bar.on_event(body("done", f"epochs[0].batches[{batch}].fwd", "training_forward", seconds=0.001))
            bar.on_event(body("skipped", f"epochs[0].batches[{batch}].step", "training_optimizer_step",
                              status="skipped"))
        task = bar.progress.tasks[0]
        assert task.completed == 0
        bar.on_event(CardEvent("done", "r1", 3, "epochs", "loop", position=1))
        assert task.completed == 1 and task.total == 3


def test_while_a_block_runs_the_bar_says_each_loops_iteration_of_how_many_and_the_latest_loss():
    bar = RunProgress(Console(file=io.StringIO()), enabled=False)
    with bar:
        bar.on_event(CardEvent("run_started", "r1", 3))
        bar.on_event(CardEvent("started", "r1", 3, "epochs", "loop", position=1))
        bar.on_event(CardEvent("progress", "r1", 3, "epochs", "loop", position=1, metrics={"loss_value": 0.41},
                               step=3, steps=10, iterations=[{"block": "epochs", "index": 2, "total": 10},
                                                             {"block": "batches", "index": 16, "total": 45}]))
        task = bar.progress.tasks[0]
        assert bar.describe(task) == "epochs 3/10 · batches 17/45 · loss 0.41" and bar.loss_text(task) == ""
        bar.on_event(body("done", "epochs[3].batches[0].loss", "training_loss", metrics={"loss_value": 0.39}))
        bar.on_event(body("skipped", "epochs[3].batches[0].step", "training_optimizer_step"))
        assert bar.describe(task) == "epochs 4/10 · batches 1/45 · loss 0.39 · 1 skipped"
        bar.on_event(CardEvent("done", "r1", 3, "epochs", "loop", position=1))
        assert bar.describe(task) == task.description and bar.loss_text(task) == "loss 0.39"


def test_a_loop_of_unknown_length_reads_as_a_question_mark():
    bar = RunProgress(Console(file=io.StringIO()), enabled=False)
    with bar:
        bar.on_event(CardEvent("run_started", "r1", 3))
        bar.on_event(CardEvent("progress", "r1", 3, "batches", "loop", position=0, step=1, steps=None,
                               iterations=[{"block": "batches", "index": 0, "total": None}]))
        assert bar.describe(bar.progress.tasks[0]) == "batches 1/?"


def test_a_skipped_body_card_is_never_the_last_card_done():
    bar = RunProgress(Console(file=io.StringIO()), enabled=False)
    with bar:
        bar.on_event(CardEvent("run_started", "r1", 3))
        bar.on_event(body("done", "steps[2].back", "training_backward"))
        bar.on_event(body("skipped", "steps[2].step", "training_optimizer_step"))
        assert bar.last_done == "card 'steps[2].back'"


def test_a_cli_run_of_a_block_counts_the_top_level_cards_only(tmp_path, regression_csv, store):
    from tests.blocks import steps_pipeline
    from tests.test_cli import cli

    done = cli("run", steps_pipeline(regression_csv).save(tmp_path / "steps.yaml"), "--store", store, "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert " 5/5 " in done.stdout and "/5 " not in done.stdout.replace(" 5/5 ", "")


def test_show_says_none_for_a_scalar_output_that_was_none(regression_csv, store):
    import cardloop
    from cardloop.cli_display import print_outputs, print_run
    from cardloop.examples import basic_training_loop
    from cardloop.store.outputs import RunOutputs

    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), batches=1, batch_size=16)
    result = cardloop.run(pipeline, store=store, threads=1)  # a regression: evaluate's accuracy is None
    console = Console(file=io.StringIO(), width=4096)
    print_run(console, store, result.run_id)
    print_outputs(console, RunOutputs(result.run_id, store), "evaluate")
    shown = console.file.getvalue()
    assert "; accuracy: none" in shown
    assert "accuracy [scalar]\n  none (the card gave no value for this output)" in shown
