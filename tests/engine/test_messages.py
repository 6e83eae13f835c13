"""The messages of executors that run cards elsewhere: plain data, the same after JSON (the process executor's
pipe) and after pickling (the transport of an executor such as Ray)."""

from __future__ import annotations

import io
import json
import pickle

import pytest

import cardloop
from cardloop.engine.messages import BlockProgress, BlockRun, BodyCardEvent, CardOutcome, CardProgress, TaskFailure
from cardloop.engine.plan import plan_pipeline
from cardloop.engine.process import card_task
from cardloop.engine.stored import StoreAvailability
from cardloop.engine.worker import Worker
from cardloop.examples import basic_training_loop
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.records import RunRecords

#: What a message may be made of: the message classes, and the store's references they hold.
PLAIN_CLASSES = {("cardloop.engine.messages", name) for name in ("CardTask", "CardOutcome", "CardProgress",
                                                                  "TaskFailure", "BlockRun", "BodyCardEvent",
                                                                  "BlockProgress")} | {
    ("cardloop.engine.resolve", "StoredValue"), ("cardloop.engine.resolve", "StoredState")}


class PlainUnpickler(pickle.Unpickler):
    """Unpickles the message classes and builtin containers and scalars, nothing else (torch, numpy, ...)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in PLAIN_CLASSES:
            raise pickle.UnpicklingError(f"not plain data: {module}.{name}")
        return super().find_class(module, name)


def plain_round_trip(message):
    return PlainUnpickler(io.BytesIO(pickle.dumps(message))).load()


def json_round_trip(message):
    return type(message).from_json(json.loads(json.dumps(message.to_json())))


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """A store holding every output of the guide's loop over two batches, and the plan of that loop."""
    root = tmp_path_factory.mktemp("messages")
    csv = root / "regression.csv"
    rows = [",".join(f"{(i * 7 + j) % 11 / 10:.1f}" for j in range(5)) for i in range(40)]
    csv.write_text("a,b,c,d,target\n" + "\n".join(rows) + "\n")
    pipeline = basic_training_loop(path=str(csv), input_dim=4, layers=(8,), prepare=False, batches=2,
                                   batch_size=16)
    cardloop.run(pipeline, store=root / "store", persist="all", threads=1)
    return root / "store", plan_pipeline(pipeline)


@pytest.fixture
def backward_task(stored_run):
    """The task that runs the second Backward card elsewhere: loads from the store, the loss's lineage first."""
    root, plan = stored_run
    available = StoreAvailability(plan, RunRecords(root / "runs.sqlite"), ArtifactStore(root))
    return card_task(plan, available, [plan.card("back1")], "plan-key", {}, keep_all=True, report_progress=True,
                     pipeline=plan.pipeline.to_dict())


def test_a_card_task_names_what_to_load_and_the_lineage_to_recompute(backward_task, stored_run):
    _, plan = stored_run
    assert [plan.cards[p].id for p in backward_task.positions] == ["fwd1", "loss1", "back1"]
    assert backward_task.value_loads and backward_task.state_loads


def test_a_card_task_pickles_as_plain_data(backward_task):
    assert plain_round_trip(backward_task) == backward_task


def test_a_card_task_survives_the_process_executors_json(backward_task):
    assert json_round_trip(backward_task) == backward_task


def test_a_block_card_task_pickles_as_plain_data_and_survives_json(backward_task):
    block = BlockRun("run-1", 30.0, True, False, 4, ("epochs", 2), "epochs[3].steps[1].fwd", True, False)
    task = type(backward_task)(**{**vars(backward_task), "block": block})
    assert plain_round_trip(task) == task
    assert json_round_trip(task) == task


def test_a_card_outcome_from_a_worker_pickles_as_plain_data_and_survives_json(backward_task, stored_run):
    outcome = Worker(str(stored_run[0])).handle(backward_task)
    assert outcome.failure is None and outcome.snapshots
    assert plain_round_trip(outcome) == outcome
    assert json_round_trip(outcome) == outcome


@pytest.mark.parametrize("message", [
    CardOutcome(failure=TaskFailure("batch index 7 is past the last batch", "batch7", "training_prepare_batch")),
    CardOutcome(failure=TaskFailure("KeyError: 'x'", traceback="Traceback (most recent call last): ...")),
    CardProgress(3, 10, {"loss": 0.25}),
    BodyCardEvent("epochs[3].steps[7].loss", "done", 0.002,
                  {"loss_value": {"kind": "scalar", "digest": None, "summary": 0.25}}),
    BodyCardEvent("epochs[3].steps[7].step", "skipped"),
    BlockProgress({"iterations": [{"block": "epochs", "index": 3, "total": None}], "metrics": {"loss_value": 0.25}}),
    CardOutcome(1.5, iteration_stats=[{"path": "epochs.loss", "card_type": "training_loss", "depth": 1,
                                       "metric_ports": ["loss_value"], "status": b"\x01\x00", "seconds": b"\0" * 8,
                                       "indices": b"\0" * 16, "metrics": b"\xff" * 16}], stopped_at="epochs[1]"),
    CardOutcome(failure=TaskFailure("failed", "epochs[0].fwd", "training_forward"),
                iteration_stats=[{"path": "epochs.fwd", "card_type": "training_forward", "depth": 1,
                                  "metric_ports": [], "status": b"", "seconds": b"", "indices": b"", "metrics": b""}]),
], ids=["card failed", "worker failed", "progress", "body card done", "body card skipped", "block progress",
        "block outcome", "block failed"])
def test_failures_and_progress_pickle_as_plain_data_and_survive_json(message):
    assert plain_round_trip(message) == message
    assert json_round_trip(message) == message


def test_a_message_holding_a_live_object_does_not_pass_as_plain_data():
    import torch

    with pytest.raises(pickle.UnpicklingError, match="not plain data"):
        plain_round_trip(CardProgress(1, 2, {"loss": torch.tensor(0.5)}))
