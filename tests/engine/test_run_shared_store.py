"""Runs whose artifacts live on a shared URL (`artifacts=`, `--artifacts`; docs/store.md): on a real S3-compatible
server on loopback (tests/s3.py), the run records staying in SQLite in the store folder. The pipeline is the
guide's Basic Training Loop over two small batches of `regression_csv`, one torch thread."""

import subprocess
import sys

import pytest

import cardloop
from cardloop.engine.process import stop_workers
from cardloop.errors import ArtifactCorrupt
from cardloop.examples import basic_training_loop
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.records import RunRecords
from tests.oracle import assert_same_weights, hand_written_loop
from tests.s3 import overwrite, s3_keys, s3_url  # noqa: F401  (fixture)

SHAPE = {"batch_size": 16, "layers": [8]}


def loop(csv):
    return basic_training_loop(path=str(csv), input_dim=4, prepare=False, batches=2, **SHAPE)


def final_model(result):
    return result.outputs["step1"]["model"]


@pytest.fixture(autouse=True)
def _no_idle_workers():
    """Workers are kept per store; each test has its own store, so its worker is stopped after it."""
    yield
    stop_workers()


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_run_with_artifacts_on_s3_trains_bit_identically_to_a_local_run(regression_csv, tmp_path, s3_url,
                                                                           executor):
    shared = cardloop.run(loop(regression_csv), store=tmp_path / "shared", artifacts=s3_url, executor=executor,
                          threads=1)
    local = cardloop.run(loop(regression_csv), store=tmp_path / "local", threads=1)
    assert shared.status == "succeeded"
    assert_same_weights(final_model(shared), final_model(local))
    assert_same_weights(final_model(shared), hand_written_loop(regression_csv, batches=2, **SHAPE))
    assert s3_keys(s3_url) and not (tmp_path / "shared" / "artifacts").exists(), "every artifact went to s3"


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_second_run_is_served_from_the_cache_through_s3(regression_csv, tmp_path, s3_url, executor):
    store = tmp_path / "shared"
    first = cardloop.run(loop(regression_csv), store=store, artifacts=s3_url, threads=1)
    again = cardloop.run(loop(regression_csv), store=store, executor=executor, threads=1)  # the store remembers
    assert again.executed == [] and "step1" in again.cached
    assert_same_weights(final_model(again), final_model(first))  # loaded from s3: the folder holds no artifact
    assert not (store / "artifacts").exists()


def test_a_corrupted_object_on_s3_is_never_served_a_run_recomputes_it(regression_csv, tmp_path, s3_url):
    store = tmp_path / "shared"
    first = cardloop.run(loop(regression_csv), store=store, artifacts=s3_url, threads=1, persist="all")
    batch = RunRecords(store / "runs.sqlite").card_execution(first.run_id, "batch1").outputs["batch_data"]
    key = next(key for key in s3_keys(s3_url) if batch["digest"] in key)
    overwrite(s3_url, key, b"not the batch")
    again = cardloop.run(loop(regression_csv), store=store, threads=1, persist="all")
    assert "batch1" in again.executed
    assert_same_weights(final_model(again), hand_written_loop(regression_csv, batches=2, **SHAPE))
    assert ArtifactStore(store).verify(batch["digest"]), "the recomputed batch replaced the corrupted object"


def test_loading_a_stored_output_whose_object_was_overwritten_on_s3_is_refused_naming_it(regression_csv, tmp_path,
                                                                                          s3_url):
    store = tmp_path / "shared"
    first = cardloop.run(loop(regression_csv), store=store, artifacts=s3_url, threads=1, persist="all")
    batch = RunRecords(store / "runs.sqlite").card_execution(first.run_id, "batch1").outputs["batch_data"]
    key = next(key for key in s3_keys(s3_url) if batch["digest"] in key)
    overwrite(s3_url, key, b"not the batch")
    with pytest.raises(ArtifactCorrupt, match=f"artifact {batch['digest']} is corrupt.*s3://.*{key.split('/')[-1]}"):
        cardloop.load_output(first.run_id, "batch1", "batch_data", store=store)

def cli(*args):
    return subprocess.run([sys.executable, "-m", "cardloop.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False)


def test_cli_run_with_artifacts_on_s3_then_show_reads_them_without_the_option(regression_csv, tmp_path, s3_url):
    pipeline = loop(regression_csv).save(tmp_path / "loop.yaml")
    store = tmp_path / "shared"
    done = cli("run", pipeline, "--store", store, "--artifacts", s3_url, "-q", "--threads", "1")
    assert done.returncode == 0, done.stderr
    run_id = RunRecords(store / "runs.sqlite").list_runs(1)[0].run_id
    exported = cli("export", run_id, "step1", "model", tmp_path / "model.safetensors", "--store", store)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "model.safetensors").stat().st_size > 0


def test_cli_refuses_another_artifacts_url_for_a_bound_store_in_one_sentence(regression_csv, tmp_path, s3_url):
    pipeline = loop(regression_csv).save(tmp_path / "loop.yaml")
    store = tmp_path / "shared"
    assert cli("run", pipeline, "--store", store, "--artifacts", s3_url, "-q", "--threads", "1").returncode == 0
    refused = cli("run", pipeline, "--store", store, "--artifacts", "s3://elsewhere/artifacts", "-q")
    assert refused.returncode == 1
    assert f"keeps its artifacts at {s3_url}, not s3://elsewhere/artifacts" in " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr


def test_two_machines_with_their_own_store_folders_write_one_bucket_at_once_but_share_no_cache_hits(
        regression_csv, tmp_path, s3_url):
    pipeline = loop(regression_csv).save(tmp_path / "loop.yaml")
    stores = [tmp_path / "machine-a", tmp_path / "machine-b"]
    runs = [subprocess.Popen([sys.executable, "-m", "cardloop.cli", "run", str(pipeline), "--store", str(store),
                              "--artifacts", s3_url, "-q", "--threads", "1"], stderr=subprocess.PIPE, text=True)
            for store in stores]
    for process in runs:
        assert process.wait(300) == 0, process.stderr.read()
    models = []
    for store in stores:
        records = RunRecords(store / "runs.sqlite")
        run_id = records.list_runs(1)[0].run_id
        assert {e.status for e in records.card_executions(run_id)} == {"done"}, "no cache hit from the other store"
        models.append(cardloop.load_output(run_id, "step1", "model", store=store))
    assert_same_weights(models[0], models[1])
    assert_same_weights(models[0], hand_written_loop(regression_csv, batches=2, **SHAPE))
