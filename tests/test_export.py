"""`cardloop export RUN CARD PORT FILE`: a stored output written to a file a user can take elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import cardloop
from cardloop.examples import basic_training_loop
from tests.undecodable import retyped, swap_final_state


def cli(*args):
    return subprocess.run([sys.executable, "-m", "cardloop.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def one_line(text: str) -> str:
    """Rich wraps long messages to the terminal width: compare them as one line."""
    return " ".join(text.split())


@pytest.fixture
def run_all(regression_csv, store):
    """A run that kept every output (persist 'all'): split and normalized data, two training steps."""
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), batches=2, batch_size=16)
    return cardloop.run(pipeline, store=store, persist="all", threads=1, keep_outputs=True)


def export(run, card, port, file, store):
    return cli("export", run.run_id, card, port, file, "--store", store)


def test_a_model_whose_artifact_does_not_decode_is_a_sentence_naming_card_port_and_artifact(run_all, store, tmp_path):
    digest = swap_final_state(store, run_all.run_id, "model.model", lambda data: retyped(data, "state.0.weight", "I32"))
    file = tmp_path / "model.safetensors"
    done = export(run_all, "step1", "model", file, store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (f"error: output 'model' of card 'step1' in run {run_all.run_id} cannot be loaded: artifact {digest} "
            "(model-safetensors) passes its hash check but does not decode") in one_line(done.stderr)
    assert not file.exists()


def test_a_model_is_written_as_safetensors_with_its_state_dict(run_all, store, tmp_path):
    file = tmp_path / "out" / "model.safetensors"
    done = export(run_all, "step1", "model", file, store)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    written = load_file(str(file))
    for model in (cardloop.load_output(run_all.run_id, "step1", "model", store=store),
                  run_all.outputs["step1"]["model"]):
        expected = model.state_dict()
        assert written.keys() == expected.keys()
        for name, tensor in expected.items():
            assert torch.equal(written[name], tensor), name


@pytest.mark.parametrize("card, port, keys", [("loss1", "loss", {"loss"}), ("batch0", "batch_data", {"X", "y"})])
def test_tensors_losses_and_batches_are_written_as_safetensors(run_all, store, tmp_path, card, port, keys):
    file = tmp_path / f"{card}.safetensors"
    done = export(run_all, card, port, file, store)
    assert done.returncode == 0, done.stderr
    written = load_file(str(file))
    assert set(written) == keys
    value = cardloop.load_output(run_all.run_id, card, port, store=store)
    expected = {"X": value.X, "y": value.y} if port == "batch_data" else {next(iter(keys)): value}
    for name, tensor in expected.items():
        assert torch.equal(written[name], tensor), name


@pytest.mark.parametrize("card, port, extension", [("normalize", "train_dataset", ".parquet"),
                                                   ("normalize", "train_dataset", ".csv"),
                                                   ("data", "dataset", ".csv")])
def test_a_table_is_written_as_parquet_or_csv(run_all, store, tmp_path, regression_csv, card, port, extension):
    file = tmp_path / f"table{extension}"
    done = export(run_all, card, port, file, store)
    assert done.returncode == 0, done.stderr
    expected = cardloop.load_output(run_all.run_id, card, port, store=store)
    if extension == ".parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(file), expected)
    else:
        pd.testing.assert_frame_equal(pd.read_csv(file),
                                      expected.reset_index(drop=True))
    if card == "data":
        pd.testing.assert_frame_equal(expected.reset_index(drop=True), pd.read_csv(regression_csv))


@pytest.mark.parametrize("card, port", [("back0", "gradients_computed"), ("evaluate", "metrics"),
                                        ("loss0", "loss_value")])
def test_infos_and_scalars_are_written_as_json(run_all, store, tmp_path, card, port):
    file = tmp_path / "value.json"
    done = export(run_all, card, port, file, store)
    assert done.returncode == 0, done.stderr
    expected = cardloop.load_output(run_all.run_id, card, port, store=store)
    assert json.loads(file.read_text()) == expected
    assert expected == run_all.outputs[card][port]


@pytest.mark.parametrize("card, port, file, allowed", [
    ("step1", "model", "model.csv", ".safetensors, not '.csv'"),
    ("normalize", "train_dataset", "train.json", ".parquet, .csv, not '.json'"),
    ("back0", "gradients_computed", "info.parquet", ".json, not '.parquet'"),
    ("step1", "model", "model", ".safetensors, not 'model'"),
])
def test_a_wrong_extension_is_an_error_naming_the_allowed_ones(run_all, store, tmp_path, card, port, file, allowed):
    target = tmp_path / file
    done = export(run_all, card, port, target, store)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"output '{port}' of card '{card}' is of kind" in one_line(done.stderr)
    assert f"write it as {allowed}" in one_line(done.stderr)
    assert not target.exists()


def test_an_unknown_card_is_an_error_suggesting_the_near_ones(run_all, store, tmp_path):
    done = export(run_all, "stepp1", "model", tmp_path / "m.safetensors", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"run {run_all.run_id} has no card 'stepp1'; did you mean 'step1'" in one_line(done.stderr)


def test_an_unknown_port_is_an_error_listing_the_cards_outputs(run_all, store, tmp_path):
    done = export(run_all, "step1", "modle", tmp_path / "m.safetensors", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "card 'step1' has no output 'modle'; its outputs: model, optimizer, step_info" in one_line(done.stderr)


def test_an_unknown_run_is_an_error(run_all, store, tmp_path):
    done = cli("export", "nope", "step1", "model", tmp_path / "m.safetensors", "--store", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no run has the id or id prefix 'nope'" in one_line(done.stderr)


def test_an_output_the_policy_did_not_keep_is_an_error_saying_how_to_keep_it(regression_csv, store, tmp_path):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), batches=1, batch_size=16)
    result = cardloop.run(pipeline, store=store, threads=1)  # persist 'checkpoint'
    target = tmp_path / "train.parquet"
    done = export(result, "normalize", "train_dataset", target, store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert ("output 'train_dataset' of card 'normalize' was not stored under persist policy 'checkpoint'; "
            "run again with --persist all") in one_line(done.stderr)
    assert not target.exists()


# --- the per-iteration records of loop blocks --------------------------------------------------------------


@pytest.fixture
def nested_run(regression_csv, store):
    from tests.blocks import nested_pipeline

    return cardloop.run(nested_pipeline(regression_csv, when={"every": 2, "of": "batches"}), store=store, threads=1)


def test_a_body_cards_iterations_are_written_as_csv_one_row_per_execution(nested_run, store, tmp_path):
    file = tmp_path / "loss.csv"
    done = cli("export", nested_run.run_id, "epochs.batches.loss", file, "--store", store)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(file)
    assert list(table.columns) == ["path", "epochs", "batches", "status", "seconds", "loss_value"]
    assert table["path"].tolist()[:2] == ["epochs[0].batches[0].loss", "epochs[0].batches[1].loss"]
    assert table["epochs"].tolist() == [0, 0, 0, 1, 1, 1] and table["batches"].tolist() == [0, 1, 2] * 2
    losses = nested_run.metrics("loss_value")
    assert table["loss_value"].tolist() == [*losses[0:3], *losses[4:7]]


def test_a_blocks_iterations_are_written_as_one_csv_per_body_card_with_skipped_ones_marked(nested_run, store,
                                                                                         tmp_path):
    done = cli("export", nested_run.run_id, "epochs", tmp_path / "epochs", "--store", store)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == sorted(
        f"{path}.csv" for path in ("epochs.batches.zero", "epochs.batches.fwd", "epochs.batches.loss",
                                   "epochs.batches.back", "epochs.batches.step", "epochs.batches", "epochs.check",
                                   "epochs.score"))
    step = pd.read_csv(tmp_path / "epochs" / "epochs.batches.step.csv")
    assert step["status"].tolist() == ["skipped", "done", "skipped"] * 2
    assert (step["seconds"][step["status"] == "skipped"] == 0).all()


@pytest.mark.parametrize(("path", "target", "said"), [
    ("epochs", "epochs.csv", "block 'epochs' has 8 body cards, each written as its own CSV: give a folder"),
    ("epochs.batches.loss", "loss.json", "are written as .csv, not '.json'"),
    ("epochs[0].batches[1].loss", "loss.csv", "is one iteration; export the records of a block ('epochs')"),
    ("opt", "out", "has no loop block 'opt' with recorded iterations; its blocks: epochs (to export an output"),
])
def test_exporting_iterations_wrongly_is_one_sentence(nested_run, store, tmp_path, path, target, said):
    done = cli("export", nested_run.run_id, path, tmp_path / target, "--store", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert said in one_line(done.stderr)
