"""The example pipelines: committed files match their generator, they train, and the custom L1 card trains like
PyTorch."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

import cardloop
from cardloop.cards.registry import load_card_file
from cardloop.examples import basic_training_loop
from cardloop.pipeline.fileformat import load_pipeline
from tests.oracle import assert_same_weights, build_mlp

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_committed_example_files_are_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)], check=True,
                   capture_output=True)
    generated = sorted(path.name for path in tmp_path.glob("*.yaml"))
    assert generated == ["basic_training_loop.yaml", "custom_l1.yaml", "training_loop.yaml",
                         "unrolled_training_loop.yaml", "warmup_cosine.yaml"]
    for name in generated:
        assert (tmp_path / name).read_text() == (EXAMPLES / name).read_text(), \
            f"examples/{name} is out of date: run python examples/make_examples.py"


def test_the_basic_example_is_the_guides_loop_as_blocks_in_at_most_60_lines(store):
    text = (EXAMPLES / "basic_training_loop.yaml").read_text()
    assert len(text.splitlines()) <= 60
    pipeline = load_pipeline(EXAMPLES / "basic_training_loop.yaml")
    assert [c.type for c in pipeline.cards] == ["data_load", "data_split", "data_normalize", "model_define",
                                                "training_init_optimizer", "loop", "evaluate"]
    result = cardloop.run(pipeline, store=store)
    epochs = result.outputs["epochs"]
    assert 1 <= len(epochs["loss"]) <= 10 and all(len(losses) == 45 for losses in epochs["loss"])
    assert len(epochs["val_mse"]) == len(epochs["loss"])  # validated after every epoch
    early = epochs["early"]
    stopped = len(epochs["loss"]) < 10
    assert early["step"] == len(epochs["loss"]) - 1 and (early["wait"] >= 3) == stopped
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.2


def test_the_unrolled_example_covers_one_epoch_and_evaluates(store):
    pipeline = load_pipeline(EXAMPLES / "unrolled_training_loop.yaml")
    batches = [c for c in pipeline.cards if c.type == "training_prepare_batch"]
    assert len(batches) == 45 and batches[-1].config["batch_index"] == 44  # 354 rows in batches of 8
    result = cardloop.run(pipeline, store=store)
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.2


def test_the_loop_example_trains_three_epochs_in_one_card_and_evaluates(store):
    pipeline = load_pipeline(EXAMPLES / "training_loop.yaml")
    assert [c.type for c in pipeline.cards].count("training_loop") == 1 and len(pipeline.cards) == 7
    result = cardloop.run(pipeline, store=store)
    assert len(result.metrics("loss_value")) == 3 * 45
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.2


def test_the_l1_card_between_loss_and_backward_trains_like_pytorch(regression_csv, store):
    load_card_file(EXAMPLES / "cards" / "l1_regularization.py")
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False, batches=3,
                                   batch_size=16, learning_rate=0.01, l1_weight=0.01)
    assert pipeline.card("back1").inputs["loss"] == "l1_1.loss"
    result = cardloop.run(pipeline, store=store)

    frame = pd.read_csv(regression_csv)
    X = torch.tensor(frame[["a", "b", "c", "d"]].values, dtype=torch.float32)
    y = torch.tensor(frame[["target"]].values, dtype=torch.float32)
    model = build_mlp(4, [8])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _, (xb, yb) in zip(range(3), DataLoader(TensorDataset(X, y), batch_size=16)):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        loss = loss + 0.01 * sum(p.abs().sum() for p in model.parameters())
        loss.backward()
        optimizer.step()
    assert_same_weights(result.outputs["step2"]["model"], model)
