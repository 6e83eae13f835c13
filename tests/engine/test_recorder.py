"""The run recorder: what a run leaves in the records and the store, under each persist policy."""

import math
import sqlite3

import pytest

import cardloop
from cardloop.errors import CardFailed, StoreError
from cardloop.examples import basic_training_loop
from cardloop.store.outputs import RunOutputs
from cardloop.store.records import RunRecords


def loop(csv, batches=3):
    return basic_training_loop(path=str(csv), input_dim=4, layers=(8,), prepare=False, batches=batches,
                               batch_size=16)


def records(store):
    return RunRecords(store / "runs.sqlite")


def test_every_card_execution_and_every_loss_is_recorded(regression_csv, store):
    result = cardloop.run(loop(regression_csv), store=store)
    executions = records(store).card_executions(result.run_id)
    assert [e.card_id for e in executions] == list(result.outputs)
    assert all(e.status == "done" and not e.cache_hit and e.cache_key for e in executions)
    metrics = records(store).metrics(result.run_id, "loss_value")
    assert [(m.card_id, m.step) for m in metrics] == [("loss0", 0), ("loss1", 1), ("loss2", 2)]
    assert [m.value for m in metrics] == result.metrics("loss_value")
    assert records(store).get_run(result.run_id).status == "succeeded"


def test_executions_record_the_state_versions_seen_and_made(regression_csv, store):
    result = cardloop.run(loop(regression_csv, batches=1), store=store)
    fwd = records(store).card_execution(result.run_id, "fwd0")
    assert fwd.states_seen == {"model.model": 2} and fwd.states_made == {"model.model": 3}


def test_the_default_policy_keeps_infos_as_summaries_and_the_final_state(regression_csv, store):
    result = cardloop.run(loop(regression_csv), store=store)
    outputs = RunOutputs(result.run_id, store)
    assert outputs.ports("batch1")["batch_data"]["digest"] is None
    assert outputs.ports("step1")["step_info"]["summary"]["step"] == 2
    assert outputs.ports("data")["dataset"]["digest"] is None
    assert outputs.ports("data")["dataset"]["summary"] == {"rows": 100, "columns": ["a", "b", "c", "d", "target"]}
    snapshots = records(store).state_snapshots(result.run_id)
    assert [(s.card_id, s.version) for s in snapshots] == [("step2", 13)]
    assert set(snapshots[0].members) == {"model.model", "opt.optimizer", "rng"}
    with pytest.raises(cardloop.CardloopError, match="not stored under persist policy 'checkpoint'"):
        outputs.load("fwd1", "model")


def test_policy_all_keeps_every_output_and_every_state_version(regression_csv, store):
    result = cardloop.run(loop(regression_csv), store=store, persist="all")
    outputs = RunOutputs(result.run_id, store)
    batch = outputs.load("batch1", "batch_data")
    assert batch.X.shape == (16, 4)
    made = [pc for pc in result.outputs if records(store).card_execution(result.run_id, pc).states_made]
    snapshotted = [s.card_id for s in records(store).state_snapshots(result.run_id)]
    assert snapshotted == made
    zeroed = outputs.load("zero1", "optimizer")
    assert type(zeroed).__name__ == "Adam"
    before_step = outputs.load("back1", "model")
    after_step = outputs.load("step1", "model")
    assert all(p.grad is not None for p in before_step.parameters())
    assert not all((a == b).all() for a, b in zip(before_step.parameters(), after_step.parameters()))


def test_a_failed_run_records_the_failing_card_and_the_state_before_it(regression_csv, store):
    pipeline = loop(regression_csv)
    pipeline.card("batch2").config["batch_index"] = 50
    with pytest.raises(CardFailed) as caught:
        cardloop.run(pipeline, store=store)
    run_id = caught.value.result.run_id
    run = records(store).get_run(run_id)
    assert run.status == "failed" and "card 'batch2'" in run.error
    failed = records(store).card_execution(run_id, "batch2")
    assert failed.status == "failed" and "batch_index" in failed.error
    assert [s.card_id for s in records(store).state_snapshots(run_id)] == ["step1"]


HALVE_THEN_FAIL = '''
import torch
from cardloop import Port, card
from cardloop.errors import CardError
from cardloop.kinds import MODEL


@card("test_halve_then_fail", title="Halve, then fail", category="test", mutates_state=True,
      inputs=[Port("model", MODEL)], outputs=[Port("model", MODEL, state_of="model")])
def halve_then_fail(config, model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.5)
    raise CardError("failed after changing the model")
'''


def test_a_state_changing_card_that_fails_part_way_leaves_no_snapshot_of_the_half_changed_state(
        regression_csv, store, tmp_path):
    from tests.oracle import assert_same_weights, hand_written_loop

    cards = tmp_path / "halve.py"
    cards.write_text(HALVE_THEN_FAIL)
    failing = loop(regression_csv, batches=2)
    failing.add("test_halve_then_fail", "halve", model=failing.card("step1")["model"])
    with pytest.raises(CardFailed, match="failed after changing the model"):
        cardloop.run(failing, store=store, cards=[cards])
    # the live model was halved after step1 finished: recorded as step1's state, it would be served below
    assert [s.card_id for s in records(store).state_snapshots(latest_run(store))] == []
    again = cardloop.run(loop(regression_csv, batches=2), store=store)
    assert_same_weights(again.outputs["step1"]["model"], hand_written_loop(
        regression_csv, batches=2, batch_size=16, layers=[8]))


def latest_run(store) -> str:
    return records(store).list_runs(1)[0].run_id


def test_an_unknown_policy_is_refused(regression_csv, store):
    with pytest.raises(ValueError, match="unknown persist policy 'some'; valid policies: checkpoint, all"):
        cardloop.run(loop(regression_csv), store=store, persist="some")


def refuse_metric_rows(store) -> None:
    """Make the store's database refuse every metric row from now on, as a store that fails mid-run would."""
    RunRecords(store / "runs.sqlite").close()
    database = sqlite3.connect(store / "runs.sqlite", isolation_level=None)
    database.execute("CREATE TRIGGER refuse_metrics BEFORE INSERT ON metrics "
                     "BEGIN SELECT RAISE(ABORT, 'metric rows refused'); END")
    database.close()


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_run_whose_records_could_not_be_written_is_recorded_failed_and_says_so(regression_csv, store, monkeypatch,
                                                                                  writer):
    from cardloop.engine import recorder

    if writer == "process":
        monkeypatch.setattr(recorder, "WRITER_PROCESS_CARDS", 0)
    refuse_metric_rows(store)
    with pytest.raises(StoreError, match=r"run \S+ failed: its records could not all be written \(.*metric rows "
                                         r"refused"):
        cardloop.run(loop(regression_csv), store=store)
    run = records(store).list_runs(1)[0]
    assert run.status == "failed" and "metric rows refused" in run.error
    assert len(records(store).card_executions(run.run_id)) == len(loop(regression_csv).cards)


def test_a_diverging_loss_is_recorded_as_it_is_nan_and_inf_included(regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False, batches=4,
                                   batch_size=16, optimizer_type="sgd", learning_rate=1e30)
    result = cardloop.run(pipeline, store=store)
    losses = result.metrics("loss_value")
    recorded = [m.value for m in records(store).metrics(result.run_id, "loss_value")]
    assert result.status == "succeeded" and len(recorded) == len(losses) == 4
    assert math.isfinite(losses[0]) and not any(math.isfinite(v) for v in losses[1:])
    assert [repr(v) for v in recorded] == [repr(v) for v in losses]  # nan and inf, each where it was
