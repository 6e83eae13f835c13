"""Run events reach user callbacks for every card, with timings and losses."""


import cardloop
from cardloop.errors import CardFailed
from cardloop.examples import basic_training_loop


def run_collecting(pipeline, store):
    events = []
    try:
        cardloop.run(pipeline, store=store, progress=events.append)
    except CardFailed:
        pass
    return events


def test_every_card_is_started_and_done_in_script_order(regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=2, batch_size=16)
    events = run_collecting(pipeline, store)
    assert events[0].kind == "run_started" and events[0].total == len(pipeline.cards)
    assert events[-1].kind == "run_finished" and events[-1].status == "succeeded"
    started = [e.card_id for e in events if e.kind == "started"]
    done = [e for e in events if e.kind == "done"]
    assert started == [c.id for c in pipeline.cards] == [e.card_id for e in done]
    assert all(e.seconds >= 0 for e in done)


def test_loss_cards_report_their_loss(regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=2, batch_size=16)
    events = run_collecting(pipeline, store)
    losses = {e.card_id: e.metrics["loss_value"] for e in events if e.kind == "done" and e.metrics}
    assert set(losses) == {"loss0", "loss1"} and all(v > 0 for v in losses.values())


def test_a_failure_is_an_event_with_its_sentence(regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=1, batch_size=16)
    pipeline.card("batch0").config["batch_index"] = 99
    events = run_collecting(pipeline, store)
    failed = [e for e in events if e.kind == "failed"]
    assert [e.card_id for e in failed] == ["batch0"] and "makes 7 batches" not in failed[0].error
    assert "make 7 batches" in failed[0].error
    assert events[-1].kind == "run_finished" and events[-1].status == "failed"
