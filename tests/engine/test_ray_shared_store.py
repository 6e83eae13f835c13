"""The Ray executor with the store's artifacts on S3 (docs/ray.md, docs/store.md): a real S3-compatible server on
loopback (tests/conftest.py's `s3_server`, started before the session's Ray so that its actors reach it, as a
cluster's nodes reach S3 with their own credentials). Oracle combinations unrolled and as loop blocks train bit
for bit as the hand-written loop, a second run is served from the cache through S3, and a sweep runs on Ray."""

import pytest

import cardloop
from cardloop.engine.ray_executor import CardActor
from cardloop.examples import loop_blocks
from cardloop.store.records import RunRecords
from tests.engine.test_oracle import COMBINATIONS, EPOCHS, SHAPE, card_pipeline
from tests.oracle import assert_same_weights, hand_written_loop
from tests.s3 import s3_keys, s3_url  # noqa: F401  (fixture)
from tests.test_sweeps import tiny

#: a few of the oracle's 18 combinations: the first (adam, mse) and the last (rmsprop, huber, clipped)
FEW = [COMBINATIONS[0], COMBINATIONS[-1]]


pytestmark = pytest.mark.usefixtures("ray_without_actors")


def options_of(optimizer_type, loss_type, gradient_clip):
    return dict(optimizer_type=optimizer_type, loss_type=loss_type, gradient_clip=gradient_clip, learning_rate=0.01,
                weight_decay=0.001)


@pytest.mark.parametrize("optimizer_type, loss_type, gradient_clip", FEW)
def test_the_unrolled_loop_on_ray_with_artifacts_on_s3_is_bit_identical_to_the_hand_written_loop(
        regression_csv, tmp_path, s3_url, optimizer_type, loss_type, gradient_clip):
    options = options_of(optimizer_type, loss_type, gradient_clip)
    result = cardloop.run(card_pipeline(regression_csv, **options), store=tmp_path / "store", artifacts=s3_url,
                          threads=1, executor="ray")
    assert result.status == "succeeded"
    assert_same_weights(result.outputs["step6"]["model"], hand_written_loop(regression_csv, **SHAPE, **options))
    assert s3_keys(s3_url) and not (tmp_path / "store" / "artifacts").exists(), "every artifact went to s3"


@pytest.mark.parametrize("optimizer_type, loss_type, gradient_clip", FEW)
def test_loop_blocks_on_ray_with_artifacts_on_s3_are_bit_identical_to_the_hand_written_loop(
        regression_csv, tmp_path, s3_url, optimizer_type, loss_type, gradient_clip):
    options = options_of(optimizer_type, loss_type, gradient_clip)
    blocks = loop_blocks(path=str(regression_csv), input_dim=4, layers=SHAPE["layers"], prepare=False,
                         epochs=EPOCHS, batch_size=SHAPE["batch_size"], shuffle=True, seed=3, **options)
    result = cardloop.run(blocks, store=tmp_path / "store", artifacts=s3_url, threads=1, executor="ray")
    assert result.status == "succeeded"
    assert_same_weights(result.outputs["epochs"]["model"],
                        hand_written_loop(regression_csv, **SHAPE, epochs=EPOCHS, shuffle=True, seed=3, **options))
    assert not (tmp_path / "store" / "artifacts").exists()


def test_a_second_run_on_ray_is_served_from_the_cache_through_s3(regression_csv, tmp_path, s3_url):
    store = tmp_path / "store"
    first = cardloop.run(card_pipeline(regression_csv), store=store, artifacts=s3_url, threads=1, executor="ray")
    again = cardloop.run(card_pipeline(regression_csv), store=store, threads=1, executor="ray")
    assert again.executed == [] and "step6" in again.cached
    assert_same_weights(again.outputs["step6"]["model"], first.outputs["step6"]["model"])  # loaded from s3
    assert not (store / "artifacts").exists()


def test_the_state_actor_keeps_artifacts_at_the_drivers_url_where_its_store_folder_names_none(tmp_path, s3_url):
    # a node other than the driver's: the store folder's path exists there without the driver's store.json
    actor = CardActor(str(tmp_path / "on another node"), 1, [], s3_url)
    assert actor.worker.artifacts.files.location == s3_url


def test_a_sweep_on_ray_with_artifacts_on_s3_runs_every_variant_and_its_data_cards_once(tmp_path, s3_url):
    store = tmp_path / "store"
    result = cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, store=store, artifacts=s3_url,
                            threads=1, executor="ray", parallel=2)
    local = cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, store=tmp_path / "local", threads=1)
    assert [o.status for o in result.outcomes] == ["succeeded"] * 2
    assert list(result.table()["evaluate.mse"]) == list(local.table()["evaluate.mse"])
    with RunRecords(store / "runs.sqlite") as records:
        ran = [row.card_id for run in records.list_runs() for row in records.execution_rows(run.run_id)
               if row.status == "done"]
    assert [ran.count(card) for card in ("data", "split", "normalize")] == [1, 1, 1]
    assert s3_keys(s3_url) and not (store / "artifacts").exists()
