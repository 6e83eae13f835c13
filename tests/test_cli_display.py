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
