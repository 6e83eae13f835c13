"""The process executor: every card in a warm worker process, inputs from the store, outputs back to it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cardloop
from cardloop import CardContext, CardError, CardFailed
from cardloop.cards.registry import default_registry, load_card_file
from cardloop.engine import process
from cardloop.examples import basic_training_loop
from cardloop.store.codecs import CodecContext, codec_for_kind
from cardloop.store.records import RunRecords
from tests.oracle import assert_same_weights, build_mlp

BATCHES = 3
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def loop(csv, batches=BATCHES, **options):
    return basic_training_loop(path=str(csv), input_dim=4, layers=(8,), prepare=False, batches=batches,
                               batch_size=16, **options)


@pytest.fixture(autouse=True)
def _fresh_workers():
    """Each test starts without warm workers and leaves none behind."""
    process.stop_workers()
    yield
    process.stop_workers()


def backward(loss, model):
    card_type = default_registry().get("training_backward")
    ctx = CardContext("back0", "training_backward", sources={"loss": "loss0.loss"})
    return card_type.run(config=card_type.config_model(), loss=loss, model=model, ctx=ctx)


def a_loss(model):
    X, y = torch.linspace(-1, 1, 32).reshape(8, 4), torch.linspace(0, 1, 8).reshape(8, 1)
    return torch.nn.functional.mse_loss(model(X), y)


def test_a_loss_through_the_loss_codec_has_no_graph_and_backward_refuses_it():
    model = build_mlp(4, [8])
    live = a_loss(model)
    codec = codec_for_kind("loss")
    reloaded = codec.decode(codec.encode(live, CodecContext()), CodecContext())
    assert live.requires_grad and not reloaded.requires_grad
    assert torch.equal(reloaded, live.detach())
    with pytest.raises(CardError, match=r"the loss from 'loss0.loss' has no autograd graph .* reloaded from storage"):
        backward(reloaded, model)
    assert all(p.grad is None for p in model.parameters())  # nothing was back-propagated


def test_a_stored_loss_artifact_has_no_graph_and_backward_refuses_it(regression_csv, store):
    result = cardloop.run(loop(regression_csv, batches=1), store=store, persist="all", threads=1)
    stored = cardloop.load_output(result.run_id, "loss0", "loss", store=store)
    assert isinstance(stored, torch.Tensor) and not stored.requires_grad
    assert stored.item() == result.outputs["loss0"]["loss_value"]
    model = cardloop.load_output(result.run_id, "fwd0", "model", store=store)
    for p in model.parameters():
        p.grad = None
    with pytest.raises(CardError, match="has no autograd graph"):
        backward(stored, model)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("persist", ["checkpoint", "all"])
def test_backward_in_the_worker_computes_the_local_executors_gradients(regression_csv, tmp_path, persist):
    pipeline = loop(regression_csv, optimizer_type="sgd", learning_rate=0.05)
    local = cardloop.run(pipeline, store=tmp_path / "local", executor="local", persist="all", threads=1)
    remote = cardloop.run(pipeline, store=tmp_path / "process", executor="process", persist=persist, threads=1)
    assert remote.status == "succeeded" and remote.executed == [c.id for c in pipeline.cards]
    last = f"step{BATCHES - 1}"
    assert_same_weights(cardloop.load_output(remote.run_id, last, "model", store=tmp_path / "process"),
                        cardloop.load_output(local.run_id, last, "model", store=tmp_path / "local"))
    # The worker writes a snapshot after every state change, whatever the policy: the gradients each
    # backward card made (the loss's lineage recomputed in the worker) are in the store.
    for i in range(BATCHES):
        got = cardloop.load_output(remote.run_id, f"back{i}", "model", store=tmp_path / "process")
        expected = cardloop.load_output(local.run_id, f"back{i}", "model", store=tmp_path / "local")
        for (name, a), (_, b) in zip(got.named_parameters(), expected.named_parameters()):
            assert a.grad is not None and torch.equal(a.grad, b.grad), f"back{i}: gradient of {name} differs"
    assert remote.metrics() == local.metrics()


def test_a_card_failing_in_the_worker_is_card_failed_naming_the_card(regression_csv, store):
    pipeline = loop(regression_csv, batches=8)  # 100 rows in batches of 16 make 7 batches: batch7 fails
    with pytest.raises(CardFailed) as failed:
        cardloop.run(pipeline, store=store, executor="process", threads=1)
    failure = failed.value
    assert (failure.card_id, failure.card_type) == ("batch7", "training_prepare_batch")
    assert str(failure) == ("card 'batch7' (training_prepare_batch) failed: config field 'batch_index' is 7, but "
                            "100 rows in batches of 16 make 7 batches (valid: 0 to 6)")
    assert failure.result.status == "failed"
    records = RunRecords(store / "runs.sqlite")
    assert records.get_run(failure.result.run_id).status == "failed"
    recorded = records.card_execution(failure.result.run_id, "batch7")
    assert recorded.status == "failed" and "config field 'batch_index' is 7" in recorded.error


def test_the_cli_reports_a_card_failing_in_the_worker_without_a_traceback(regression_csv, store, tmp_path):
    pipeline_file = loop(regression_csv, batches=8).save(tmp_path / "loop.yaml")
    done = subprocess.run([sys.executable, "-m", "cardloop.cli", "run", str(pipeline_file), "--store", str(store),
                           "--executor", "process", "--threads", "1", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    stderr = " ".join(done.stderr.split())
    assert "card 'batch7' (training_prepare_batch) failed: config field 'batch_index' is 7" in stderr
    assert "Traceback" not in done.stderr
    run = RunRecords(store / "runs.sqlite").list_runs(1)[0]
    assert run.status == "failed" and f"run {run.run_id} failed" in stderr


def test_workers_load_the_card_files_that_define_the_pipelines_cards(regression_csv, tmp_path):
    load_card_file(EXAMPLES / "cards" / "l1_regularization.py")  # as a notebook would, not through cards=
    pipeline = loop(regression_csv, l1_weight=0.01)
    local = cardloop.run(pipeline, store=tmp_path / "local", threads=1)
    in_workers = cardloop.run(pipeline, store=tmp_path / "process", executor="process", threads=1)
    assert in_workers.status == "succeeded"
    assert_same_weights(cardloop.load_output(in_workers.run_id, f"step{BATCHES - 1}", "model",
                                             store=tmp_path / "process"), local.outputs[f"step{BATCHES - 1}"]["model"])


def test_a_worker_is_started_once_and_reused_by_later_runs(regression_csv, store):
    pipeline = loop(regression_csv, batches=1)
    first = cardloop.run(pipeline, store=store, executor="process", threads=1)
    assert len(process._workers) == 1
    worker = next(iter(process._workers.values()))
    second = cardloop.run(pipeline, store=store, executor="process", threads=1, cache=False)
    assert second.executed == first.executed == [c.id for c in pipeline.cards]
    assert list(process._workers.values()) == [worker] and worker.process.poll() is None
    assert second.seconds < first.seconds  # the first paid for starting the worker and importing torch
    assert_same_weights(cardloop.load_output(second.run_id, "step0", "model", store=store),
                        cardloop.load_output(first.run_id, "step0", "model", store=store))



def test_a_store_bound_to_an_artifacts_url_since_its_worker_started_gets_a_new_worker(store):
    from cardloop.store.location import bind_artifacts

    before = process.worker_for(store, 1, [])
    bind_artifacts(store, "memory://cardloop-test-process/artifacts")
    after = process.worker_for(store, 1, [])
    assert after is not before, "the warm worker keeps the artifacts location it read when it started"

SLEEP_CARD = '''
import time
from cardloop import CardConfig, Port, card

class SleepConfig(CardConfig):
    seconds: float = 0.0
    tag: str = ""

@card("test_sleep", title="Sleep", category="test", outputs=[Port("info", "info")], config=SleepConfig)
def sleep(config: SleepConfig):
    time.sleep(config.seconds)
    return {"info": {"tag": config.tag}}
'''


def test_a_run_after_an_interrupted_run_gets_its_own_cards_answers(store, tmp_path):
    card_file = tmp_path / "sleep_cards.py"
    card_file.write_text(SLEEP_CARD)
    cards = [card_file]
    fast = cardloop.Pipeline(name="fast")
    fast.add("test_sleep", "a", tag="A")
    fast.add("test_sleep", "b", tag="B")
    slow = cardloop.Pipeline(name="slow")
    slow.add("test_sleep", "slow", seconds=3.0, tag="slow")
    cardloop.run(fast, store=store, executor="process", cards=cards, cache=False)  # the worker is warm

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    def on_event(event):
        if event.kind == "started" and event.card_id == "slow":
            signal.setitimer(signal.ITIMER_REAL, 0.5)  # Ctrl-C while the worker runs the card

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            cardloop.run(slow, store=store, executor="process", cards=cards, progress=on_event)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    result = cardloop.run(fast, store=store, executor="process", cards=cards, cache=False)
    assert result.status == "succeeded"
    assert cardloop.load_output(result.run_id, "a", "info", store=store) == {"tag": "A"}
    assert cardloop.load_output(result.run_id, "b", "info", store=store) == {"tag": "B"}
