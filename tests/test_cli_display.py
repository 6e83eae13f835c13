"""The CLI's progress bar follows run events: cards done of total, the current card (with a long card's
step), the latest loss."""

import io

from rich.console import Console

from cardloop.cli_display import RunProgress
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
