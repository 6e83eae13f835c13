"""training_loop: the Basic Training Loop's six cards per batch in one card, against PyTorch and against the
unrolled pipeline (tests/engine/test_oracle.py compares both with the hand-written loop for every optimizer,
loss and clipping setting)."""

import pandas as pd
import pytest
import torch

import cardloop
from cardloop.engine.events import CardEvent
from cardloop.errors import CardFailed, PipelineInvalid
from cardloop.store.records import RunRecords
from tests.engine.test_oracle import SHAPE, card_pipeline
from tests.oracle import LOSSES, OPTIMIZERS, assert_same_weights, build_mlp, hand_written_loop


def loop_pipeline(csv_path, **options):
    return card_pipeline(csv_path, "loop card", **options)


def unrolled_pipeline(csv_path, **options):
    return card_pipeline(csv_path, "unrolled", **options)


def test_it_trains_exactly_as_the_unrolled_pipeline(regression_csv, store):
    options = dict(optimizer_type="adam", loss_type="huber", gradient_clip=0.5, learning_rate=0.01)
    looped = cardloop.run(loop_pipeline(regression_csv, **options), store=store / "a")
    unrolled = cardloop.run(unrolled_pipeline(regression_csv, **options), store=store / "b")
    assert looped.metrics("loss_value") == unrolled.metrics("loss_value")
    assert_same_weights(looped.outputs["loop"]["model"], unrolled.outputs["step6"]["model"])
    mine, theirs = looped.outputs["loop"]["optimizer"], unrolled.outputs["step6"]["optimizer"]
    for a, b in zip(mine.state.values(), theirs.state.values()):
        assert all(torch.equal(a[key], b[key]) for key in ("exp_avg", "exp_avg_sq", "step"))
    info = looped.outputs["loop"]["loop_info"]
    assert info["optimizer_steps"] == unrolled.outputs["step6"]["step_info"]["step"] == 7
    assert info["clipped_steps"] == sum(unrolled.outputs[f"step{i}"]["step_info"]["clipped"] for i in range(7))


def test_without_zero_grad_gradients_accumulate_as_in_the_unrolled_pipeline(regression_csv, store):
    result = cardloop.run(loop_pipeline(regression_csv, zero_grad=False, learning_rate=0.01), store=store)
    assert_same_weights(result.outputs["loop"]["model"],
                        hand_written_loop(regression_csv, zero_grad=False, learning_rate=0.01, **SHAPE))


def test_epochs_pass_over_the_batch_range_again_and_start_batch_picks_it(regression_csv, store):
    p = loop_pipeline(regression_csv, batches=3, epochs=2, learning_rate=0.01)
    p.card("loop").config["start_batch"] = 2
    result = cardloop.run(p, store=store)
    frame = pd.read_csv(regression_csv)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(4, SHAPE["layers"])
    optimizer = OPTIMIZERS["adam"](model.parameters(), lr=0.01)
    losses = []
    for _ in range(2):
        for index in (2, 3, 4):
            optimizer.zero_grad()
            loss = LOSSES["mse"](model(X[index * 16:(index + 1) * 16]), y[index * 16:(index + 1) * 16])
            losses.append(loss.item())
            loss.backward()
            optimizer.step()
    assert_same_weights(result.outputs["loop"]["model"], model)
    assert result.metrics("loss_value") == losses
    info = result.outputs["loop"]["loop_info"]
    assert (info["steps"], info["epochs"], info["batches"], info["num_batches"]) == (6, 2, [2, 4], 7)
    assert (info["first_loss"], info["last_loss"]) == (losses[0], losses[-1])


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_it_trains_exactly_as_a_hand_written_loop_over_a_seeded_dataloader(regression_csv, store, drop_last):
    options = dict(optimizer_type="adam", loss_type="mse", gradient_clip=0.5, learning_rate=0.01)
    p = loop_pipeline(regression_csv, batches=None, epochs=3, **options)
    p.card("loop").config.update(shuffle=True, seed=9, drop_last=drop_last)
    result = cardloop.run(p, store=store)
    expected = hand_written_loop(regression_csv, **{**SHAPE, "batches": 100}, **options, epochs=3, shuffle=True,
                                 seed=9, drop_last=drop_last)
    assert_same_weights(result.outputs["loop"]["model"], expected)
    info = result.outputs["loop"]["loop_info"]
    assert (info["steps"], info["num_batches"], info["shuffle"]) == ((18, 6, True) if drop_last else (21, 7, True))


def test_drop_last_leaves_out_the_short_batch_and_names_it_in_a_range_past_the_end(regression_csv, store):
    p = loop_pipeline(regression_csv, batches=None)
    p.card("loop").config.update(drop_last=True, start_batch=6)
    with pytest.raises(CardFailed, match=r"'start_batch' is 6, but 100 rows in batches of 16 make 6 batches, leaving "
                                         r"out the short last one \(drop_last\) \(valid: 0 to 5\)"):
        cardloop.run(p, store=store)


def test_every_step_s_loss_is_a_metric_in_the_run_records_and_the_events(regression_csv, store):
    events: list[CardEvent] = []
    result = cardloop.run(loop_pipeline(regression_csv), store=store, progress=events.append)
    losses = result.outputs["loop"]["loss_value"]
    assert losses.dtype == torch.float32 and losses.shape == (7,)
    with RunRecords(store / "runs.sqlite") as records:
        recorded = records.metrics(result.run_id, "loss_value")
    assert [m.value for m in recorded] == losses.tolist() == result.metrics("loss_value")
    done = next(e for e in events if e.kind == "done" and e.card_id == "loop")
    assert done.metrics == {"loss_value": losses[-1].item()}


def test_while_it_runs_it_reports_its_step_and_latest_loss(regression_csv, store, monkeypatch):
    from cardloop.cards import training_loop as module

    events: list[CardEvent] = []
    cardloop.run(loop_pipeline(regression_csv), store=store / "a", progress=events.append)
    first = [e for e in events if e.kind == "progress"][0]  # the first step always reports
    assert (first.card_id, first.card_type, first.step, first.steps) == ("loop", "training_loop", 1, 7)

    monkeypatch.setattr(module, "REPORT_SECONDS", 0.0)  # then every step
    events.clear()
    result = cardloop.run(loop_pipeline(regression_csv, epochs=2), store=store / "b", progress=events.append)
    progress = [e for e in events if e.kind == "progress"]
    assert [(e.step, e.steps) for e in progress] == [(step, 14) for step in range(1, 15)]
    assert [e.metrics["loss_value"] for e in progress] == result.metrics("loss_value")
    kinds = [e.kind for e in events if e.card_id == "loop"]
    assert kinds == ["started"] + ["progress"] * 14 + ["done"]


def test_under_the_process_executor_the_worker_relays_its_progress(regression_csv, store):
    events: list[CardEvent] = []
    result = cardloop.run(loop_pipeline(regression_csv), store=store, executor="process", progress=events.append)
    progress = [e for e in events if e.kind == "progress"]
    assert progress and all(e.card_id == "loop" and e.steps == 7 for e in progress)
    assert progress[0].step == 1  # the first step always reports
    assert progress[0].metrics["loss_value"] == result.metrics("loss_value")[0]
    kinds = [e.kind for e in events if e.card_id == "loop"]
    assert kinds[0] == "started" and kinds[-1] == "done" and set(kinds[1:-1]) == {"progress"}


def test_a_cached_loop_replays_its_losses_and_the_process_executor_matches(regression_csv, store):
    first = cardloop.run(loop_pipeline(regression_csv), store=store)
    again = cardloop.run(loop_pipeline(regression_csv), store=store)
    assert again.cached == ["data", "model", "opt", "loop"]
    with RunRecords(store / "runs.sqlite") as records:
        replayed = [m.value for m in records.metrics(again.run_id, "loss_value")]
    assert replayed == first.metrics("loss_value") == again.metrics("loss_value")
    worker = cardloop.run(loop_pipeline(regression_csv), store=store / "process", executor="process")
    assert worker.metrics("loss_value") == first.metrics("loss_value")
    assert_same_weights(worker.outputs["loop"]["model"], first.outputs["loop"]["model"])


@pytest.mark.parametrize("field, value, message", [
    ("start_batch", 7, r"'start_batch' is 7, but 100 rows in batches of 16 make 7 batches \(valid: 0 to 6\)"),
    ("num_batches", 8, r"'num_batches' is 8, but from batch 0 only 7 of the 7 batches remain .*valid: 1 to 7"),
])
def test_a_batch_range_past_the_end_names_the_card_and_the_field(regression_csv, store, field, value, message):
    p = loop_pipeline(regression_csv)
    p.card("loop").config[field] = value
    with pytest.raises(CardFailed, match=r"card 'loop' \(training_loop\) failed.*" + message):
        cardloop.run(p, store=store)


def test_a_model_of_the_wrong_width_is_the_user_s_mistake_named(regression_csv, store):
    p = loop_pipeline(regression_csv)
    p.card("model").config["input_dim"] = 3
    with pytest.raises(CardFailed, match=r"card 'loop'.*the batch has 4 features.*set model_define's input_dim"):
        cardloop.run(p, store=store)


def test_bad_config_is_refused_before_anything_runs(regression_csv, store):
    p = loop_pipeline(regression_csv, epochs=0)
    with pytest.raises(PipelineInvalid, match=r"card 'loop'.*epochs"):
        cardloop.run(p, store=store)
    assert not (store / "runs.sqlite").exists()


def test_a_loop_card_that_ends_past_a_checkpoint_is_a_resume_point(regression_csv, store):
    """Checkpoints fall after the state-changing card that ends past their time: one loop card per stretch
    of training gives a long training resume points (here the first loop runs longer than checkpoint_seconds)."""
    def two_loops(second_loss: str):
        p = card_pipeline(regression_csv, "loop card", epochs=500, learning_rate=0.001)
        p.add("training_loop", "loop2", train_dataset=p.card("data")["dataset"], model=p.card("loop")["model"],
              optimizer=p.card("loop")["optimizer"], batch_size=16, loss_type=second_loss)
        return p

    # first, without checkpoints, what the changed pipeline gives (and torch.optim imported, so that the
    # cards before the first loop take far less than checkpoint_seconds)
    fresh = cardloop.run(two_loops("huber"), store=store / "fresh")
    first = cardloop.run(two_loops("mse"), store=store, checkpoint_seconds=0.2)
    assert first.outputs["loop"]["loop_info"]["steps"] == 3500
    with RunRecords(store / "runs.sqlite") as records:
        executions = {e.card_id: e for e in records.card_executions(first.run_id)}
        assert executions["loop"].seconds > 0.2 and executions["opt"].seconds < 0.1
        assert [s.card_id for s in records.state_snapshots(first.run_id)] == ["loop", "loop2"]
    changed = cardloop.run(two_loops("huber"), store=store, checkpoint_seconds=0.2)
    assert changed.executed == ["data", "loop2"] and "loop" in changed.cached  # a table is re-read, not stored
    assert_same_weights(changed.outputs["loop2"]["model"], fresh.outputs["loop2"]["model"])


class Stop(KeyboardInterrupt):
    """Ctrl-C, as a user presses it, at a chosen step of the loop (from the progress callback)."""


def stop_at(step: int, events: list):
    def progress(event: CardEvent) -> None:
        events.append(event)
        if event.kind == "progress" and event.step == step:
            raise Stop()
    return progress


def test_a_run_stopped_inside_the_loop_goes_on_from_its_last_checkpoint(regression_csv, store, monkeypatch):
    from cardloop.cards import training_loop as module

    monkeypatch.setattr(module, "REPORT_SECONDS", 0.0)

    def pipeline():
        p = loop_pipeline(regression_csv, epochs=2, learning_rate=0.01, gradient_clip=0.5)
        p.card("model").config["dropout"] = 0.3  # the random state must be restored too
        return p

    whole = cardloop.run(pipeline(), store=store / "whole")
    events: list[CardEvent] = []
    with pytest.raises(Stop):  # checkpoint_seconds=0: a checkpoint after every step
        cardloop.run(pipeline(), store=store, checkpoint_seconds=0, progress=stop_at(9, events))
    assert [e.step for e in events if e.kind == "progress"] == list(range(1, 10))

    events.clear()
    resumed = cardloop.run(pipeline(), store=store, progress=events.append)
    assert "loop" in resumed.executed
    assert [e.step for e in events if e.kind == "progress"] == list(range(10, 15))  # steps 10 to 14 only
    assert_same_weights(resumed.outputs["loop"]["model"], whole.outputs["loop"]["model"])
    assert resumed.metrics("loss_value") == whole.metrics("loss_value")  # the 9 losses from before, then 5
    assert resumed.outputs["loop"]["loop_info"] == whole.outputs["loop"]["loop_info"]
    mine, theirs = resumed.outputs["loop"]["optimizer"], whole.outputs["loop"]["optimizer"]
    for a, b in zip(mine.state.values(), theirs.state.values()):
        assert all(torch.equal(a[key], b[key]) for key in ("exp_avg", "exp_avg_sq", "step"))
    with RunRecords(store / "runs.sqlite") as records:
        assert [m.value for m in records.metrics(resumed.run_id, "loss_value")] == whole.metrics("loss_value")


def test_a_shuffled_loop_stopped_inside_its_second_pass_goes_on_in_that_pass_s_order(regression_csv, store,
                                                                                      monkeypatch):
    from cardloop.cards import training_loop as module

    monkeypatch.setattr(module, "REPORT_SECONDS", 0.0)

    def pipeline():
        p = loop_pipeline(regression_csv, epochs=2, learning_rate=0.01)
        p.card("loop").config.update(shuffle=True, seed=4)
        return p

    whole = cardloop.run(pipeline(), store=store / "whole")
    with pytest.raises(Stop):
        cardloop.run(pipeline(), store=store, checkpoint_seconds=0, progress=stop_at(9, []))
    resumed = cardloop.run(pipeline(), store=store)
    assert "loop" in resumed.executed
    assert_same_weights(resumed.outputs["loop"]["model"], whole.outputs["loop"]["model"])
    assert resumed.metrics("loss_value") == whole.metrics("loss_value")


def test_without_the_cache_a_stopped_loop_starts_again(regression_csv, store, monkeypatch):
    from cardloop.cards import training_loop as module

    monkeypatch.setattr(module, "REPORT_SECONDS", 0.0)
    with pytest.raises(Stop):
        cardloop.run(loop_pipeline(regression_csv), store=store, checkpoint_seconds=0, progress=stop_at(4, []))
    events: list[CardEvent] = []
    again = cardloop.run(loop_pipeline(regression_csv), store=store, cache=False, progress=events.append)
    assert [e.step for e in events if e.kind == "progress"] == list(range(1, 8))
    whole = cardloop.run(loop_pipeline(regression_csv), store=store / "whole")
    assert_same_weights(again.outputs["loop"]["model"], whole.outputs["loop"]["model"])
