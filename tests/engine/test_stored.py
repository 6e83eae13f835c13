"""What the store holds for a plan: the newest execution of each cache key, and older ones when it lacks a value."""

import pytest
import torch

from cardloop.engine.plan import plan_pipeline
from cardloop.engine.resolve import StoredValue
from cardloop.engine.stored import StoreAvailability
from cardloop.examples import basic_training_loop
from cardloop.models import build_model
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.codecs import CodecContext
from cardloop.store.records import CardExecution, RunRecords
from tests.undecodable import offsets_past_the_end, renamed, reshaped


def test_a_value_the_newest_execution_did_not_store_is_taken_from_an_older_one(tmp_path):
    plan = plan_pipeline(basic_training_loop(path="x.csv", input_dim=4, batches=1, prepare=False))
    fwd = next(pc for pc in plan.cards if pc.id == "fwd0")
    records, artifacts = RunRecords(tmp_path / "runs.sqlite"), ArtifactStore(tmp_path)
    digest = artifacts.save("tensor", torch.ones(3, 1)).digest
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


# --- what passes its hash check but does not decode is not offered ----------------------------------------


def plan_and_store(tmp_path):
    plan = plan_pipeline(basic_training_loop(path="x.csv", input_dim=4, batches=1, prepare=False, layers=[8]))
    return plan, RunRecords(tmp_path / "runs.sqlite"), ArtifactStore(tmp_path)


def test_a_stored_value_that_does_not_decode_is_not_offered(tmp_path):
    plan, records, artifacts = plan_and_store(tmp_path)
    fwd = plan.card("fwd0")
    data = artifacts.get(artifacts.save("tensor", torch.ones(3, 1)).digest)
    digest = artifacts.put(offsets_past_the_end(data), "safetensors")
    records.add_card_executions([CardExecution("r", "fwd0", 5, fwd.card.type, "done", 1.0, 0.1,
                                               cache_key=fwd.cache_key,
                                               outputs={"predictions": {"kind": "tensor", "digest": digest}})])
    assert StoreAvailability(plan, records, artifacts).value(fwd, "predictions") is None


def mlp():
    return build_model({"name": "mlp", "config": {"input_dim": 4, "layers": [8], "activation": "relu"}})


def snapshot_row(run_id, pc, members, created_at):
    return {"run_id": run_id, "card_id": pc.id, "position": pc.position, "group": "model.model",
            "version": pc.states_made["model.model"], "cache_key": pc.cache_key, "members": members,
            "created_at": created_at}


def stored_state(artifacts, model, optimizer):
    """A snapshot's members for `model` and its optimizer, with the RNG state, as the recorder stores them."""
    from cardloop.engine.snapshot import encode_rng

    return {"model.model": {"kind": "model", "digest": artifacts.save("model", model).digest},
            "opt.optimizer": {"kind": "optimizer",
                              "digest": artifacts.save("optimizer", optimizer, CodecContext(model=model)).digest},
            "rng": {"kind": "rng", "digest": artifacts.put(encode_rng(), "safetensors")}}


@pytest.mark.parametrize("member, change", [
    ("model.model", offsets_past_the_end),
    ("opt.optimizer", lambda data: renamed(data, "state/0.weight/exp_avg", "elsewhere")),
    ("rng", lambda data: reshaped(data, "cpu", [2, torch.get_rng_state().numel() // 2])),
])
def test_a_snapshot_with_a_member_that_does_not_decode_is_passed_over_for_an_older_one(tmp_path, member, change):
    plan, records, artifacts = plan_and_store(tmp_path)
    step = plan.card("step0")
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    good = stored_state(artifacts, model, optimizer)
    bad = {**good, member: {**good[member], "digest": artifacts.put(
        change(artifacts.get(good[member]["digest"])), "safetensors")}}
    records.add_state_snapshots([snapshot_row("older", step, good, 1.0), snapshot_row("newer", step, bad, 2.0)])
    available = StoreAvailability(plan, records, artifacts)
    assert available.state("model.model", step.states_made["model.model"], step).members == good
    assert not available.decodes(bad)


def test_checking_that_a_snapshot_decodes_leaves_torchs_random_state_alone(tmp_path):
    plan, records, artifacts = plan_and_store(tmp_path)
    model = mlp()
    members = stored_state(artifacts, model, torch.optim.SGD(model.parameters()))
    torch.manual_seed(3)
    before = torch.get_rng_state()
    assert StoreAvailability(plan, records, artifacts).decodes(members)
    assert torch.equal(torch.get_rng_state(), before)


# --- an output that is None ------------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_scalar_output_that_is_none_stands_in_for_itself_and_the_card_is_served_from_the_cache(
        regression_csv, tmp_path, executor):
    import cardloop
    from cardloop.engine import process

    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), batches=1, batch_size=16)
    try:
        first = cardloop.run(pipeline, store=tmp_path, executor=executor, threads=1)
        again = cardloop.run(pipeline, store=tmp_path, executor=executor, threads=1)
    finally:
        process.stop_workers()
    assert first.outputs["evaluate"]["accuracy"] is None  # a regression has no accuracy
    assert again.executed == []
    assert again.outputs["evaluate"]["accuracy"] is None
    assert again.outputs["evaluate"]["mse"] == first.outputs["evaluate"]["mse"]
