"""Where a store keeps its artifacts (store/location.py): `<root>/artifacts`, or the URL its config file binds it
to, while its run records stay in `<root>/runs.sqlite`."""

from __future__ import annotations

import json

import pytest

from cardloop.errors import StoreError
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.location import CONFIG_FILE, bind_artifacts, bound_artifacts

URL = "memory://cardloop-test-location/artifacts"


def test_a_store_bound_to_a_url_keeps_its_artifacts_there_and_nothing_in_its_folder(tmp_path):
    bind_artifacts(tmp_path, URL)
    digest = ArtifactStore(tmp_path).put(b"bound", "bin")
    assert ArtifactStore(tmp_path, artifacts=URL).get(digest) == b"bound"
    assert sorted(path.name for path in tmp_path.iterdir()) == [CONFIG_FILE]


def test_the_binding_is_a_small_json_file_in_the_store_folder(tmp_path):
    bind_artifacts(tmp_path, URL)
    assert json.loads((tmp_path / CONFIG_FILE).read_text()) == {"artifacts": URL}
    assert bound_artifacts(tmp_path) == URL


def test_a_store_without_a_config_keeps_its_artifacts_in_its_folder(tmp_path):
    assert bound_artifacts(tmp_path) is None
    assert ArtifactStore(tmp_path).artifacts_dir == tmp_path / "artifacts"


def test_a_store_that_is_a_file_has_no_binding_so_that_its_usual_error_says_it_is_a_file(tmp_path):
    (tmp_path / "store").write_text("not a folder")
    assert bound_artifacts(tmp_path / "store") is None


def test_binding_a_store_again_to_its_url_changes_nothing(tmp_path):
    bind_artifacts(tmp_path, URL)
    bind_artifacts(tmp_path, URL)
    assert bound_artifacts(tmp_path) == URL


def test_a_store_bound_to_one_url_refuses_another_naming_both(tmp_path):
    bind_artifacts(tmp_path, URL)
    with pytest.raises(StoreError, match=f"keeps its artifacts at {URL}, not memory://other: give --artifacts"):
        bind_artifacts(tmp_path, "memory://other")
    assert bound_artifacts(tmp_path) == URL


def test_a_store_with_local_artifacts_refuses_a_url_so_that_no_record_names_a_missing_artifact(tmp_path):
    ArtifactStore(tmp_path).put(b"local", "bin")
    with pytest.raises(StoreError, match="keeps its artifacts in .*artifacts: to keep them at memory://.*new --store"):
        bind_artifacts(tmp_path, URL)
    assert not (tmp_path / CONFIG_FILE).exists()


def test_a_path_that_is_not_a_url_is_refused_saying_what_a_url_looks_like(tmp_path):
    with pytest.raises(StoreError, match="--artifacts '/shared/artifacts' is not a URL: give one such as s3://"):
        bind_artifacts(tmp_path, "/shared/artifacts")


def test_a_url_no_backend_can_open_is_refused_before_the_store_is_bound(tmp_path):
    with pytest.raises(StoreError, match="nosuch://x cannot be opened"):
        bind_artifacts(tmp_path, "nosuch://x")
    assert not (tmp_path / CONFIG_FILE).exists()


@pytest.mark.parametrize("text", ["{not json", '{"artifacts": 3}', "[]"])
def test_a_damaged_store_config_is_a_clear_error_naming_the_file(tmp_path, text):
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(StoreError, match=f"the store config {tmp_path / CONFIG_FILE} "):
        ArtifactStore(tmp_path)
