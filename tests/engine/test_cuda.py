"""The GPU paths (docs/design.md §3 and §6, guide Tips 3): a model made on CUDA trains there, is stored from CPU
and is moved back to CUDA when loaded; resumed and process-executor runs train exactly like one uninterrupted run.
Skipped without a CUDA device."""

from __future__ import annotations

import os

# cuBLAS is deterministic only with a fixed workspace; read when its first handle is made, so set it before any
# CUDA work. The process executor's workers inherit this process's environment.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import cardloop  # noqa: E402
from cardloop.engine import process  # noqa: E402
from cardloop.examples import basic_training_loop, training_loop  # noqa: E402
from cardloop.kinds import MODEL  # noqa: E402
from cardloop.store import safetensors_format  # noqa: E402
from cardloop.store.artifacts import ArtifactStore  # noqa: E402
from cardloop.store.model_codec import STATE_PREFIX, ModelCodec  # noqa: E402
from cardloop.store.outputs import RunOutputs  # noqa: E402
from tests.devices import needs_cuda  # noqa: E402
from tests.oracle import LOSSES, OPTIMIZERS, assert_same_weights, build_mlp  # noqa: E402

DEVICE = "cuda"
pytestmark = needs_cuda

ROWS, FEATURES = 320, 4
SHAPE = dict(batches=20, batch_size=16, layers=[32, 32])
OPTIONS = dict(optimizer_type="adam", loss_type="mse", learning_rate=0.01)
LAST = f"step{SHAPE['batches'] - 1}"


@pytest.fixture(autouse=True)
def _deterministic():
    """Every op these loops use has a deterministic CUDA kernel (given the cuBLAS workspace above), so results
    are compared with torch.equal; a warning names any op that has none."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


@pytest.fixture(autouse=True)
def _fresh_workers():
    """No warm process-executor worker (and its CUDA context) outlives a test."""
    process.stop_workers()
    yield
    process.stop_workers()


@pytest.fixture
def csv(tmp_path):
    """320 rows of 4 standardized features and a noisy linear target."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((ROWS, FEATURES))
    y = X @ np.array([1.5, -2.0, 0.5, 1.0]) + 0.1 * rng.standard_normal(ROWS)
    path = tmp_path / "regression.csv"
    pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(target=y).to_csv(path, index=False)
    return path


def pipeline_on_device(path):
    pipeline = basic_training_loop(path=str(path), input_dim=FEATURES, prepare=False, **SHAPE, **OPTIONS)
    pipeline.card("model").config["device"] = DEVICE
    return pipeline


def hand_written_loop_on_device(path) -> torch.nn.Module:
    """tests/oracle.py's loop with the model made on CPU after the seed, then moved to the device (as
    model_define does), and each batch moved to the device."""
    frame = pd.read_csv(path)
    X = torch.tensor(frame.drop(columns="target").values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(FEATURES, SHAPE["layers"]).to(DEVICE)
    optimizer = OPTIMIZERS[OPTIONS["optimizer_type"]](model.parameters(), lr=OPTIONS["learning_rate"])
    loader = DataLoader(TensorDataset(X, y), batch_size=SHAPE["batch_size"], shuffle=False)
    for _, (xb, yb) in zip(range(SHAPE["batches"]), loader):
        optimizer.zero_grad()
        LOSSES[OPTIONS["loss_type"]](model(xb.to(DEVICE)), yb.to(DEVICE)).backward()
        optimizer.step()
    return model


def on_device(model: torch.nn.Module) -> bool:
    return all(p.device.type == DEVICE for p in model.parameters()) and \
        all(p.grad is None or p.grad.device.type == DEVICE for p in model.parameters())


def stored_model_bytes(store, run_id: str, card_id: str) -> bytes:
    """The artifact of the model snapshot the store keeps for the state `card_id` left."""
    outputs = RunOutputs(run_id, store)
    state = outputs.ports(card_id)["model"]["state"]
    snapshot = outputs.snapshot_of(card_id, state)
    assert snapshot is not None, f"no snapshot of '{state}' as '{card_id}' left it"
    member = snapshot.members[state]
    assert member["kind"] == MODEL
    return ArtifactStore(store).get(member["digest"])


def test_a_cuda_pipeline_trains_on_cuda_exactly_like_the_hand_written_cuda_loop(csv, store):
    result = cardloop.run(pipeline_on_device(csv), store=store, threads=1)
    assert result.status == "succeeded"
    model = result.outputs[LAST]["model"]
    assert on_device(model)
    assert_same_weights(model, hand_written_loop_on_device(csv))


def test_the_loop_card_trains_on_cuda_exactly_like_the_hand_written_cuda_loop(csv, store):
    pipeline = training_loop(path=str(csv), input_dim=FEATURES, prepare=False, **SHAPE, **OPTIONS)
    pipeline.card("model").config["device"] = DEVICE
    result = cardloop.run(pipeline, store=store, threads=1)
    model = result.outputs["loop"]["model"]
    assert on_device(model)
    assert_same_weights(model, hand_written_loop_on_device(csv))
    unrolled = cardloop.run(pipeline_on_device(csv), store=store / "unrolled", threads=1)
    assert result.metrics("loss_value") == unrolled.metrics("loss_value")


def test_the_stored_model_is_kept_as_cpu_tensors_and_loads_back_onto_cuda(csv, store):
    result = cardloop.run(pipeline_on_device(csv), store=store, threads=1)
    live = result.outputs[LAST]["model"]
    expected_state = {name: t.detach().cpu() for name, t in live.state_dict().items()}

    # the artifact: plain CPU tensors equal to the CUDA weights moved to CPU
    tensors, metadata = safetensors_format.unpack(stored_model_bytes(store, result.run_id, LAST), ModelCodec.format)
    assert metadata["architecture"]["name"] == "mlp"
    stored_state = {name[len(STATE_PREFIX):]: t for name, t in tensors.items() if name.startswith(STATE_PREFIX)}
    assert stored_state.keys() == expected_state.keys()
    for name, tensor in stored_state.items():
        assert tensor.device.type == "cpu" and torch.equal(tensor, expected_state[name]), name

    # loaded for inspection: on CPU by default, onto the device when asked
    on_cpu = cardloop.load_output(result.run_id, LAST, "model", store=store)
    assert all(p.device.type == "cpu" for p in on_cpu.parameters())
    assert_same_weights(on_cpu, live)
    back = cardloop.load_output(result.run_id, LAST, "model", store=store, device=DEVICE)
    assert on_device(back)
    assert_same_weights(back, live)
    for mine, theirs in zip(back.parameters(), live.parameters()):
        assert torch.equal(mine.grad, theirs.grad)

    # loaded for a run: the same pipeline again is served from the store, and its model comes back on the device
    again = cardloop.run(pipeline_on_device(csv), store=store, threads=1)
    assert again.executed == [] and LAST in again.cached
    reloaded = again.outputs[LAST]["model"]
    assert reloaded is not live and on_device(reloaded)
    assert_same_weights(reloaded, live)


@pytest.mark.parametrize("stop_after", ["step4", "back9"])
def test_a_cuda_run_stopped_part_way_resumes_to_the_weights_of_an_uninterrupted_run(csv, tmp_path, stop_after):
    whole = cardloop.run(pipeline_on_device(csv), store=tmp_path / "whole", threads=1)
    part = cardloop.run(pipeline_on_device(csv), store=tmp_path / "resumed", threads=1, until=stop_after)
    assert part.status == "succeeded" and LAST not in part.executed
    resumed = cardloop.run(pipeline_on_device(csv), store=tmp_path / "resumed", threads=1)
    assert resumed.status == "succeeded"
    assert "model" in resumed.cached and stop_after in resumed.cached and LAST in resumed.executed
    model = resumed.outputs[LAST]["model"]
    assert on_device(model)  # the snapshot was loaded back onto the device and trained there
    optimizer = resumed.outputs[LAST]["optimizer"]
    assert all(value.device.type == DEVICE for state in optimizer.state.values() for key, value in state.items()
               if key != "step" and isinstance(value, torch.Tensor))
    assert_same_weights(model, whole.outputs[LAST]["model"])
    assert_same_weights(model, hand_written_loop_on_device(csv))


def test_the_process_executor_trains_on_cuda_like_the_local_executor(csv, tmp_path):
    local = cardloop.run(pipeline_on_device(csv), store=tmp_path / "local", threads=1)
    remote = cardloop.run(pipeline_on_device(csv), store=tmp_path / "process", executor="process", threads=1)
    assert remote.status == "succeeded" and remote.executed == [c.id for c in pipeline_on_device(csv).cards]
    # the worker trained on the device: its stored final model, loaded for this process, comes back there
    model = remote.outputs[LAST]["model"]
    assert on_device(model)
    assert_same_weights(model, local.outputs[LAST]["model"])
    for mine, theirs in zip(model.parameters(), local.outputs[LAST]["model"].parameters()):
        assert torch.equal(mine.grad.cpu(), theirs.grad.cpu())
    assert remote.metrics() == local.metrics()
    stored = cardloop.load_output(remote.run_id, LAST, "model", store=tmp_path / "process")
    assert_same_weights(stored, hand_written_loop_on_device(csv))


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_cpu_pipeline_resumed_on_a_gpu_machine_stays_on_the_cpu(csv, tmp_path, executor):
    """docs/design.md §3: a stored model goes back to the card's device, not to whatever device the machine has."""
    pipeline = basic_training_loop(path=str(csv), input_dim=FEATURES, prepare=False, **SHAPE, **OPTIONS)
    pipeline.card("model").config["device"] = "cpu"
    whole = cardloop.run(pipeline, store=tmp_path / "whole", threads=1)
    cardloop.run(pipeline, store=tmp_path / "resumed", threads=1, until="back9", executor=executor)
    resumed = cardloop.run(pipeline, store=tmp_path / "resumed", threads=1, executor=executor)
    model = resumed.outputs[LAST]["model"]
    assert "back9" in resumed.cached and LAST in resumed.executed
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert_same_weights(model, whole.outputs[LAST]["model"])
