"""What the store holds for a plan: the newest execution of each cache key, and older ones when it lacks a value."""

from cardloop.engine.plan import plan_pipeline
from cardloop.engine.resolve import StoredValue
from cardloop.engine.stored import StoreAvailability
from cardloop.examples import basic_training_loop
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.records import CardExecution, RunRecords


def test_a_value_the_newest_execution_did_not_store_is_taken_from_an_older_one(tmp_path):
    plan = plan_pipeline(basic_training_loop(path="x.csv", input_dim=4, batches=1, prepare=False))
    fwd = next(pc for pc in plan.cards if pc.id == "fwd0")
    records, artifacts = RunRecords(tmp_path / "runs.sqlite"), ArtifactStore(tmp_path)
    digest = artifacts.put(b"predictions", "bin")
    kept = {"kind": "tensor", "digest": digest, "summary": None}
    records.add_card_executions([
        CardExecution("all", "fwd0", 4, fwd.card.type, "done", 1.0, 0.1, cache_key=fwd.cache_key,
                      outputs={"predictions": kept}),
        CardExecution("alone", "fwd0", 4, fwd.card.type, "done", 2.0, 0.1, cache_key=fwd.cache_key,
                      outputs={"predictions": {**kept, "digest": None}}),
    ])
    available = StoreAvailability(plan, records, artifacts)
    assert available.prior(fwd)["predictions"]["digest"] is None  # the newest execution
    assert available.value(fwd, "predictions") == StoredValue("tensor", digest)
    assert available.value(fwd, "model") is None
