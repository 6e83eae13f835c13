"""The run records a state actor on another node goes through (engine/ray_records.py), on the session's local
Ray (tests/conftest.py): what it writes lands in the store's SQLite file, what it reads comes from there, and
nothing but a block's RunRecords methods is served. (tests/engine/test_ray_cluster.py runs a loop block this way
on a node of a multi-node cluster.)"""

from __future__ import annotations

import pytest

from cardloop.engine.ray_records import METHODS, elsewhere, remote_records
from cardloop.store.records import RunRecords
from cardloop.store.root import RECORDS_FILE


@pytest.fixture
def records(ray_cluster, store):
    RunRecords(store / RECORDS_FILE).close()  # the store's file, made as a run makes it
    node = ray_cluster.get_runtime_context().get_node_id()
    return remote_records(ray_cluster, node, str(store))


def test_a_checkpoint_written_through_the_records_actor_is_in_the_stores_file(records, store):
    records.add_card_progress("run", "loop", "key", 7, {"model": {"digest": "d"}}, '{"epoch": 1}')
    with RunRecords(store / RECORDS_FILE) as here:
        assert here.latest_card_progress("key") == (7, {"model": {"digest": "d"}}, '{"epoch": 1}')
    assert records.latest_card_progress("key") == (7, {"model": {"digest": "d"}}, '{"epoch": 1}')
    assert records.cache_keys_with_progress() == {"key"}
    assert records.last_progress_step("loop") == 7


def test_rows_from_a_generator_are_sent_as_a_list(records):
    assert records.newest_outputs(key for key in ("a", "b")) == {}


def test_only_the_methods_a_block_uses_are_served(records):
    assert "finish_run" not in METHODS and "start_run" not in METHODS
    with pytest.raises(AttributeError):
        records.finish_run("run", "succeeded")
    with pytest.raises(AttributeError, match="have no method 'finish_run'"):
        records.ray.get(records.actor.call.remote("finish_run", ("run", "succeeded")))


def test_the_driver_itself_is_not_elsewhere(ray_cluster):
    node = ray_cluster.get_runtime_context().get_node_id()
    assert not elsewhere(ray_cluster, node) and not elsewhere(ray_cluster, None)
    assert elsewhere(ray_cluster, "another node's id")
