"""examples/two_optimizers.yaml: what make_examples.py writes, and it trains as the hand-written PyTorch loop with
two optimizers on two parts of the model."""

import subprocess
import sys
from pathlib import Path

import torch

import cardloop
from cardloop.pipeline.fileformat import load_pipeline
from tests.oracle import assert_same_weights, build_mlp
from tests.parts_oracle import frame_tensors, train_by_hand

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "two_optimizers.yaml"


def test_the_committed_example_is_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)], check=True,
                   capture_output=True)
    assert (tmp_path / EXAMPLE.name).read_text() == EXAMPLE.read_text(), \
        f"examples/{EXAMPLE.name} is out of date: run python examples/make_examples.py"


def test_the_example_trains_each_part_with_its_optimizer_as_the_hand_written_loop(store):
    pipeline = load_pipeline(EXAMPLE)
    assert [c.type for c in pipeline.cards].count("training_init_optimizer") == 2
    result = cardloop.run(pipeline, store=store, threads=1, keep_outputs=True)
    train = result.outputs["normalize"]["train_dataset"]
    model = build_mlp(10, [64, 64])
    optimizers = [torch.optim.SGD(model[0].parameters(), lr=0.01, momentum=0.9),
                  torch.optim.Adam([*model[2].parameters(), *model[4].parameters()], lr=0.001)]
    train_by_hand(*frame_tensors(train), model, optimizers, batch_size=8, epochs=10, shuffle=True)
    assert_same_weights(result.outputs["epochs"]["model"], model)
    assert result.outputs["evaluate"]["metrics"]["r2"] > 0.3
