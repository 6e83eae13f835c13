"""Gradient accumulation (docs/accumulation.md): Calculate Loss's `scale` and the Training Loop card's
`accumulate`, against PyTorch (tests/accumulation.py's hand-written loop) and against one batch k times larger."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cardloop
from cardloop import Pipeline
from cardloop.cards.training import LossConfig, loss
from cardloop.engine.events import CardEvent
from cardloop.errors import CardFailed, PipelineInvalid
from cardloop.example_accumulation import accumulation_loop
from cardloop.store.records import RunRecords
from cardloop.values import Batch
from tests.accumulation import hand_accumulation_loop
from tests.cards.test_training_loop import Stop, stop_at
from tests.oracle import assert_same_weights

LAYERS = [8]


def loop(csv, **options) -> Pipeline:
    """The accumulation example's loop on the test file: 100 rows, batches of 8 (13 a pass, the last of 4 rows)."""
    settings = dict(path=str(csv), input_dim=4, layers=tuple(LAYERS), prepare=False, batch_size=8,
                    learning_rate=0.01)
    return accumulation_loop(**{**settings, **options})


def hand(csv, **options):
    return hand_accumulation_loop(csv, **{"layers": LAYERS, "batch_size": 8, "learning_rate": 0.01, **options})


def predictions_and_batch():
    torch.manual_seed(0)
    predictions = torch.randn(16, 1, requires_grad=True)
    return predictions, Batch(torch.randn(16, 4), torch.randn(16, 1))


# --- Calculate Loss's scale ------------------------------------------------------------------------------


def test_scale_one_is_the_loss_itself_without_a_multiplication():
    predictions, batch = predictions_and_batch()
    out = loss.run(config=LossConfig(), predictions=predictions, batch_data=batch)
    expected = F.mse_loss(predictions, batch.y)
    assert torch.equal(out["loss"], expected) and type(out["loss"].grad_fn) is type(expected.grad_fn)
    assert out["loss_value"] == expected.item()


def test_scale_multiplies_the_loss_and_loss_value_stays_unscaled():
    predictions, batch = predictions_and_batch()
    out = loss.run(config=LossConfig(loss_type="huber", scale=0.25), predictions=predictions, batch_data=batch)
    unscaled = F.huber_loss(predictions, batch.y)
    assert torch.equal(out["loss"], unscaled * 0.25)
    assert out["loss_value"] == unscaled.item()
    out["loss"].backward()
    expected = predictions.detach().clone().requires_grad_()
    (F.huber_loss(expected, batch.y) * 0.25).backward()
    assert torch.equal(predictions.grad, expected.grad)


@pytest.mark.parametrize("scale", [0, -0.5, float("inf"), float("nan")])
def test_a_scale_that_is_not_a_positive_finite_number_is_refused(regression_csv, store, scale):
    p = Pipeline(name="scaled")
    data = p.add("data_load", "data", path=str(regression_csv))
    model = p.add("model_define", "model", input_dim=4, layers=LAYERS)
    batch = p.add("training_prepare_batch", "batch", train_dataset=data["dataset"], batch_size=16)
    fwd = p.add("training_forward", "fwd", model=model["model"], batch_data=batch["batch_data"])
    p.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"], scale=scale)
    with pytest.raises(PipelineInvalid, match=r"card 'loss'.*scale"):
        cardloop.run(p, store=store)


def accumulated_graph(csv, k: int, rows: int) -> Pipeline:
    """The guide's graph with accumulation: k times Prepare Batch (rows/k rows), Forward, Calculate Loss with
    scale 1/k and Backward, then one Optimizer Step (SGD)."""
    p = Pipeline(name="accumulated")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=LAYERS, seed=0)["model"]
    opt = p.add("training_init_optimizer", "opt", model=model, optimizer_type="sgd", learning_rate=0.1)
    for i in range(k):
        batch = p.add("training_prepare_batch", f"batch{i}", train_dataset=data["dataset"], batch_index=i,
                      batch_size=rows // k)
        fwd = p.add("training_forward", f"fwd{i}", model=model, batch_data=batch["batch_data"])
        scaled = p.add("training_loss", f"loss{i}", predictions=fwd["predictions"], batch_data=batch["batch_data"],
                       scale=1 / k)
        model = p.add("training_backward", f"back{i}", loss=scaled["loss"], model=fwd["model"])["model"]
    p.add("training_optimizer_step", "step", optimizer=opt["optimizer"], model=model)
    return p


def assert_close(mine: torch.Tensor, theirs: torch.Tensor) -> None:
    """Within 1e-6 of the larger one's magnitude (relative), element by element."""
    assert torch.allclose(mine, theirs, rtol=1e-6, atol=1e-6 * theirs.abs().max().item()), (mine - theirs).abs().max()


def test_k_micro_batches_with_loss_over_k_equal_one_batch_k_times_larger(regression_csv, store):
    """Mean-reduced losses: equal-sized micro-batches (4 of 16 rows against one of 64)."""
    result = cardloop.run(accumulated_graph(regression_csv, 4, 64), store=store)
    whole = cardloop.run(accumulated_graph(regression_csv, 1, 64), store=store)
    mine, theirs = result.outputs["step"]["model"], whole.outputs["step"]["model"]
    for a, b in zip(mine.parameters(), theirs.parameters()):
        assert_close(a.grad, b.grad)
        assert_close(a.detach(), b.detach())
    assert not torch.equal(mine[0].weight, cardloop.run(accumulated_graph(regression_csv, 1, 16), store=store)
                           .outputs["step"]["model"][0].weight)  # not one micro-batch's step


def test_the_scaled_graph_trains_alike_on_the_process_executor(regression_csv, store):
    """There Backward's worker recomputes the loss from its lineage, the scale included."""
    local = cardloop.run(accumulated_graph(regression_csv, 3, 48), store=store / "local")
    process = cardloop.run(accumulated_graph(regression_csv, 3, 48), store=store / "process", executor="process")
    for a, b in zip(local.outputs["step"]["model"].parameters(), process.outputs["step"]["model"].parameters()):
        assert torch.equal(a, b) and torch.equal(a.grad, b.grad)


def test_the_loop_s_k_micro_batches_equal_one_batch_k_times_larger(regression_csv, store):
    options = dict(optimizer_type="sgd", epochs=1)
    result = cardloop.run(loop(regression_csv, accumulate=4, batch_size=8, batches=4, **options), store=store)
    whole = cardloop.run(loop(regression_csv, accumulate=1, batch_size=32, batches=1, **options), store=store)
    mine, theirs = result.outputs["loop"]["model"], whole.outputs["loop"]["model"]
    for a, b in zip(mine.parameters(), theirs.parameters()):  # the loop leaves the last step's gradients
        assert_close(a.grad, b.grad)
        assert_close(a.detach(), b.detach())


# --- the Training Loop card's accumulate ---------------------------------------------------------------


@pytest.mark.parametrize("executor", ["local", "process"])
@pytest.mark.parametrize("optimizer_type, loss_type, gradient_clip", [("adam", "mse", 0.5), ("sgd", "huber", 0.0)])
def test_accumulate_trains_bit_for_bit_as_the_hand_written_accumulation_loop(regression_csv, store, executor,
                                                                             optimizer_type, loss_type, gradient_clip):
    """13 batches a pass in windows of 3: four full windows and a leftover of one, shuffled, 2 passes."""
    options = dict(optimizer_type=optimizer_type, loss_type=loss_type, gradient_clip=gradient_clip, epochs=2,
                   shuffle=True, seed=3)
    result = cardloop.run(loop(regression_csv, accumulate=3, **options), store=store, executor=executor)
    model, losses, steps = hand(regression_csv, accumulate=3, **options)
    assert_same_weights(result.outputs["loop"]["model"], model)
    assert result.metrics("loss_value") == losses  # one unscaled loss per batch
    info = result.outputs["loop"]["loop_info"]
    assert (info["steps"], info["micro_batches"], info["accumulate"], info["optimizer_steps"]) == (10, 26, 3, 10)
    assert steps == 10


def test_a_pass_s_leftover_window_steps_with_its_losses_still_divided_by_k(regression_csv, store):
    """13 batches in windows of 5: 5, 5 and a leftover of 3, which steps at the pass's end; the next pass starts
    with clean gradients."""
    result = cardloop.run(loop(regression_csv, accumulate=5, epochs=2), store=store)
    model, _, steps = hand(regression_csv, accumulate=5, epochs=2)
    assert_same_weights(result.outputs["loop"]["model"], model)
    assert result.outputs["loop"]["loop_info"]["steps"] == steps == 6
    without_leftover = cardloop.run(loop(regression_csv, accumulate=5, epochs=1, batches=10), store=store)
    assert without_leftover.outputs["loop"]["loop_info"]["steps"] == 2


def test_drop_last_leaves_the_short_batch_out_of_the_last_window(regression_csv, store):
    p = loop(regression_csv, accumulate=4, epochs=2, shuffle=True, seed=1)
    p.card("loop").config["drop_last"] = True
    result = cardloop.run(p, store=store)
    model, _, steps = hand(regression_csv, accumulate=4, epochs=2, shuffle=True, seed=1, drop_last=True)
    assert_same_weights(result.outputs["loop"]["model"], model)
    assert result.outputs["loop"]["loop_info"]["steps"] == steps == 6  # 12 batches: three full windows a pass


def test_a_window_longer_than_a_pass_is_refused_naming_the_field(regression_csv, store):
    with pytest.raises(CardFailed, match=r"'loop'.*config field 'accumulate' is 14, but a pass has only 13 batches; "
                                         r"valid: 1 to 13"):
        cardloop.run(loop(regression_csv, accumulate=14), store=store)
    result = cardloop.run(loop(regression_csv, accumulate=13, epochs=3), store=store)  # a step a pass
    model, _, steps = hand(regression_csv, accumulate=13, epochs=3)
    assert_same_weights(result.outputs["loop"]["model"], model)
    assert result.outputs["loop"]["loop_info"]["steps"] == steps == 3


def test_an_accumulate_below_one_is_refused_before_anything_runs(regression_csv, store):
    with pytest.raises(PipelineInvalid, match=r"card 'loop'.*accumulate"):
        cardloop.run(loop(regression_csv, accumulate=0), store=store)
    assert not (store / "runs.sqlite").exists()


def test_a_loop_stopped_inside_a_window_goes_on_from_its_partial_gradients(regression_csv, store, monkeypatch):
    """Stopped after 8 micro-batches, two of the window of batches 6, 7 and 8 (from 0): the checkpoint holds the
    model's gradients of batches 6 and 7, and the resumed loop adds batch 8's and steps, bit for bit."""
    from cardloop.cards import training_loop as module

    monkeypatch.setattr(module, "REPORT_SECONDS", 0.0)

    def pipeline():
        return loop(regression_csv, accumulate=3, epochs=2, shuffle=True, seed=5, gradient_clip=0.5)

    with pytest.raises(Stop):  # checkpoint_seconds=0: a checkpoint after every micro-batch
        cardloop.run(pipeline(), store=store, checkpoint_seconds=0, progress=stop_at(8, []))
    with RunRecords(store / "runs.sqlite") as records:
        step = records.latest_card_progress(next(iter(records.cache_keys_with_progress())))[0]
    assert step == 8 and step % 3 != 0  # inside a window
    events: list[CardEvent] = []
    resumed = cardloop.run(pipeline(), store=store, progress=events.append)
    assert "loop" in resumed.executed
    assert [e.step for e in events if e.kind == "progress"][0] == 9
    model, losses, steps = hand(regression_csv, accumulate=3, epochs=2, shuffle=True, seed=5, gradient_clip=0.5)
    assert_same_weights(resumed.outputs["loop"]["model"], model)
    assert resumed.metrics("loss_value") == losses
    info = resumed.outputs["loop"]["loop_info"]
    assert (info["steps"], info["optimizer_steps"], info["micro_batches"]) == (steps, steps, 26)


def test_a_loop_killed_inside_a_window_goes_on_bit_for_bit(regression_csv, tmp_path):
    """A real SIGKILL inside a window: 25 batches of 4 a pass in one window, checkpoints after every step, and the
    process kills itself once the checkpoint after step 263 (10 passes and 13 batches in) is stored, so the kill
    lands there whatever the machine's speed. Dropout draws random numbers, which the checkpoint restores too."""
    from tests.engine.test_resume import killed_at

    pipeline = loop(regression_csv, accumulate=25, batch_size=4, epochs=80, learning_rate=0.001, shuffle=True)
    pipeline.card("model").config["dropout"] = 0.2
    path = pipeline.save(tmp_path / "loop.yaml")
    store, at = tmp_path / "store", 263
    assert at % 25  # inside a window
    killed_at(path, store, "loop", at)
    events: list[CardEvent] = []
    resumed = cardloop.run(path, store=store, threads=1, progress=events.append)
    whole = cardloop.run(path, store=tmp_path / "whole", threads=1)
    assert "loop" in resumed.executed
    assert next(e.step for e in events if e.kind == "progress") == at + 1  # it went on from the checkpoint
    assert_same_weights(resumed.outputs["loop"]["model"], whole.outputs["loop"]["model"])
    assert resumed.metrics("loss_value") == whole.metrics("loss_value")
    assert resumed.outputs["loop"]["loop_info"] == whole.outputs["loop"]["loop_info"]
    assert whole.outputs["loop"]["loop_info"]["steps"] == 80
