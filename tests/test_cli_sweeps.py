"""`cardloop sweep`, `sweeps` and `sweep-show` (cli.py, cli_sweeps.py): --set values read as YAML, the results
table printed, sorted and written to CSV and Parquet, the sweep listed and shown again later; real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest

from cardloop.errors import CardloopError
from cardloop.cli_sweeps import parse_settings
from cardloop.examples import loop_blocks


def cli(*args):
    """The command line in a process of its own, its tables unwrapped whatever the terminal's COLUMNS."""
    return subprocess.run([sys.executable, "-m", "cardloop.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "1000"})


def test_set_values_are_read_as_the_items_of_a_yaml_list():
    found = parse_settings(["opt.learning_rate=1e-3,0.01,2", "model.layers=[64,64],[128]",
                            "epochs.batches.loss.loss_type=mse, huber", 'a.b=true,null,"1"'])
    assert found == {"opt.learning_rate": [0.001, 0.01, 2], "model.layers": [[64, 64], [128]],
                     "epochs.batches.loss.loss_type": ["mse", "huber"], "a.b": [True, None, "1"]}
    assert isinstance(found["opt.learning_rate"][0], float)


def test_a_set_option_without_an_equals_sign_says_its_form():
    with pytest.raises(CardloopError, match=r"--set 'opt.learning_rate' is not of the form PATH=VALUE"):
        parse_settings(["opt.learning_rate"])


def test_a_setting_given_twice_is_refused_naming_it():
    with pytest.raises(CardloopError, match=r"--set names 'a.x' twice; give all its values in one: --set a.x=A,B"):
        parse_settings(["a.x=1", "a.x=2"])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One sweep through the command line of a small loop with early stopping: two learning rates, sorted by the
    held-out mse, written to CSV and Parquet."""
    folder = tmp_path_factory.mktemp("sweep")
    pipeline = loop_blocks(epochs=4, batch_size=64, layers=(8,), patience=1).save(folder / "loop.yaml")
    done = cli("sweep", pipeline, "--store", folder / "store", "--set", "opt.learning_rate=1e-3,5e-2", "--threads", 1,
               "--sort", "evaluate.mse", "--csv", folder / "results.csv", "--parquet", folder / "results.parquet")
    return folder, done


def test_sweep_prints_each_variants_end_and_the_sorted_results(swept):
    _, done = swept
    assert done.returncode == 0, done.stderr
    assert "variant 0 succeeded: opt.learning_rate=0.001 (run " in done.stdout
    assert "variant 1 succeeded: opt.learning_rate=0.05 (run " in done.stdout
    assert done.stdout.index("│ 1 ") < done.stdout.index("│ 0 ")  # the better variant first


def test_sweep_writes_one_row_per_variant_sorted_best_first_with_final_metrics_and_best_epoch(swept):
    folder, _ = swept
    table = pd.read_csv(folder / "results.csv")
    assert list(table["opt.learning_rate"]) == [0.05, 0.001]
    assert list(table["evaluate.mse"]) == sorted(table["evaluate.mse"])
    assert list(table["status"]) == ["succeeded"] * 2
    assert list(table["epochs.iterations"]) == [3, 4]  # early stopping ended the first after 3 epochs
    assert list(table["best_epoch"]) == [1, 3]


def test_sweep_writes_the_same_table_as_parquet(swept):
    folder, _ = swept
    parquet, csv = pd.read_parquet(folder / "results.parquet"), pd.read_csv(folder / "results.csv")
    pd.testing.assert_frame_equal(parquet.drop(columns="error"), csv.drop(columns="error"), check_dtype=False)
    assert parquet["error"].isna().all() and csv["error"].isna().all()


def test_sweeps_lists_the_recorded_sweep(swept):
    folder, done = swept
    listed = cli("sweeps", "--store", folder / "store")
    assert listed.returncode == 0, listed.stderr
    assert "opt.learning_rate" in listed.stdout and "2/2 succeeded" in listed.stdout


def test_sweep_show_prints_the_recorded_sweeps_results_again(swept):
    folder, _ = swept
    swept_table = pd.read_csv(folder / "results.csv")  # the run ids tie the shown table to the swept one
    listed = cli("sweeps", "--store", folder / "store").stdout
    shown_id = next(word for word in listed.split() if word.startswith("sweep-"))
    shown = cli("sweep-show", shown_id[:12], "--store", folder / "store", "--sort", "evaluate.mse",
                "--csv", folder / "again.csv")
    assert shown.returncode == 0, shown.stderr
    pd.testing.assert_frame_equal(pd.read_csv(folder / "again.csv"), swept_table)


def test_sweep_show_of_an_unknown_column_to_sort_by_names_the_metrics(swept):
    folder, _ = swept
    listed = cli("sweeps", "--store", folder / "store").stdout
    shown_id = next(word for word in listed.split() if word.startswith("sweep-"))
    shown = cli("sweep-show", shown_id, "--store", folder / "store", "--sort", "mse")
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert "cannot sort by 'mse': the sweep's results have no such column; its metrics: " in shown.stderr
    assert "evaluate.mse" in shown.stderr


def test_sweep_of_a_setting_no_card_has_is_one_sentence_and_exit_code_1(swept, tmp_path):
    folder, _ = swept
    done = cli("sweep", folder / "loop.yaml", "--store", tmp_path / "store", "--set", "optim.learning_rate=0.1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "sweep setting 'optim.learning_rate': the pipeline has no card 'optim'" in done.stderr


def test_sweep_with_a_failed_variant_says_why_and_exits_1(swept, tmp_path):
    folder, _ = swept
    done = cli("sweep", folder / "loop.yaml", "--store", tmp_path / "store", "--set", "model.input_dim=10,3",
               "--set", "epochs.times=1", "--threads", 1)
    assert done.returncode == 1, done.stderr
    assert "variant 1 failed: model.input_dim=3" in done.stdout
    assert "variant 1 failed: card 'epochs" in done.stdout


def test_sweep_sorted_by_a_column_its_results_lack_still_prints_and_writes_them_then_says_why(swept, tmp_path):
    folder, _ = swept
    done = cli("sweep", folder / "loop.yaml", "--store", tmp_path / "store", "--set", "epochs.times=1",
               "--threads", 1, "--sort", "accuracy", "--csv", tmp_path / "results.csv")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot sort by 'accuracy'" in done.stderr and "│ succeeded │" in done.stdout
    assert list(pd.read_csv(tmp_path / "results.csv")["status"]) == ["succeeded"]


def test_sweep_on_a_ray_address_where_nothing_answers_is_one_sentence_exit_code_1_and_nothing_recorded(swept,
                                                                                                      tmp_path):
    folder, _ = swept
    with socket.socket() as probe:  # a loopback port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = cli("sweep", folder / "loop.yaml", "--store", tmp_path / "store", "--set", "opt.learning_rate=0.1",
               "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no Ray cluster answers at '127.0.0.1:{port}' (--ray-address)" in done.stderr
    assert not (tmp_path / "store" / "runs.sqlite").exists()


def test_sweep_with_artifacts_binds_the_store_to_the_url(swept, tmp_path):
    folder, _ = swept
    target = tmp_path / "shared"
    done = cli("sweep", folder / "loop.yaml", "--store", tmp_path / "store", "--set", "opt.learning_rate=0.1",
               "--threads", 1, "--artifacts", target.as_uri())
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "store" / "store.json").read_text()) == {"artifacts": target.as_uri()}
    assert any(target.rglob("*.safetensors")) and not (tmp_path / "store" / "artifacts").exists()
