"""Artifacts at a URL (store/remote.py): on a real S3-compatible server on loopback (tests/s3.py), on memory://,
and file:// as the local backend. Content addressing, one atomic write per object, hash-checked reads."""

from __future__ import annotations

import hashlib

import pytest

from cardloop.errors import ArtifactCorrupt, StoreError
from cardloop.store.artifacts import ArtifactStore, LocalFiles
from cardloop.store.remote import UrlFiles, url_files
from tests.s3 import overwrite, s3_keys, s3_url  # noqa: F401  (fixture)


def test_an_artifact_put_on_s3_reads_back_by_its_sha256(tmp_path, s3_url):
    store = ArtifactStore(tmp_path, artifacts=s3_url)
    digest = store.put(b"hello", "bin")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.get(digest) == b"hello" and store.has(digest) and store.verify(digest)


def test_an_artifact_on_s3_is_one_object_at_its_content_address_and_nothing_else(tmp_path, s3_url):
    digest = ArtifactStore(tmp_path, artifacts=s3_url).put(b"hello", "bin")
    assert s3_keys(s3_url) == [f"artifacts/{digest[:2]}/{digest}.bin"]
    assert not (tmp_path / "artifacts").exists(), "nothing is written to the local folder"


def test_a_second_store_on_the_same_bucket_sees_what_the_first_wrote(tmp_path, s3_url):
    digest = ArtifactStore(tmp_path / "one", artifacts=s3_url).put(b"shared", "bin")
    assert ArtifactStore(tmp_path / "two", artifacts=s3_url).get(digest) == b"shared"


def test_a_corrupted_object_on_s3_is_refused_naming_its_url(tmp_path, s3_url):
    store = ArtifactStore(tmp_path, artifacts=s3_url)
    digest = store.put(b"hello", "bin")
    overwrite(s3_url, f"artifacts/{digest[:2]}/{digest}.bin", b"HELLO")
    with pytest.raises(ArtifactCorrupt, match=f"artifact {digest} is corrupt.*{s3_url}/{digest[:2]}/{digest}.bin"):
        store.get(digest)
    assert not store.verify(digest)


def test_putting_the_same_content_again_replaces_a_corrupted_object_on_s3(tmp_path, s3_url):
    store = ArtifactStore(tmp_path, artifacts=s3_url)
    digest = store.put(b"hello", "bin")
    overwrite(s3_url, f"artifacts/{digest[:2]}/{digest}.bin", b"HELLO")
    store.put(b"hello", "bin")
    assert store.get(digest) == b"hello"


def test_an_artifact_missing_from_s3_is_a_store_error_naming_the_url(tmp_path, s3_url):
    store = ArtifactStore(tmp_path, artifacts=s3_url)
    with pytest.raises(StoreError, match=f"artifact {'0' * 64} is missing from the store at {s3_url}"):
        store.get("0" * 64)
    assert not store.has("0" * 64)


def test_a_bucket_that_does_not_exist_is_a_store_error_naming_the_url(tmp_path, s3_server):
    store = ArtifactStore(tmp_path, artifacts="s3://cardloop-no-such-bucket/artifacts")
    with pytest.raises(StoreError, match="the artifact store at s3://cardloop-no-such-bucket/artifacts cannot be"):
        store.put(b"hello", "bin")


def test_a_memory_url_keeps_artifacts_in_this_process(tmp_path):
    store = ArtifactStore(tmp_path, artifacts="memory://cardloop-test-memory/artifacts")
    digest = store.put(b"in memory", "bin")
    assert ArtifactStore(tmp_path / "other", artifacts="memory://cardloop-test-memory/artifacts").get(digest) \
        == b"in memory"


def test_a_file_url_is_the_local_backend_with_its_temp_file_fsync_and_rename(tmp_path):
    files = url_files(f"file://{tmp_path}/shared", durable=True)
    assert isinstance(files, LocalFiles) and files.folder == tmp_path / "shared" and files.durable


def test_a_file_system_without_atomic_whole_writes_commits_through_a_hidden_temp_name(tmp_path):
    import fsspec

    files = UrlFiles("local-test", fsspec.filesystem("file"), str(tmp_path))
    files.whole_objects = False  # as for a file system (sftp, hdfs) that can show a file being written
    files.write("ab/abc.bin", b"data")
    assert files.read("ab/abc.bin") == b"data"
    assert [path.name for path in (tmp_path / "ab").iterdir()] == ["abc.bin"], "the temp name is gone"


def test_a_url_scheme_that_no_backend_knows_is_a_clear_store_error(tmp_path):
    with pytest.raises(StoreError, match="artifacts at nosuch://x cannot be opened .*give an s3://"):
        ArtifactStore(tmp_path, artifacts="nosuch://x")


def test_a_process_killed_mid_upload_leaves_no_object_on_s3(tmp_path, s3_url, s3_server):
    import os
    import signal
    import subprocess
    import sys

    from tests.s3 import StallingProxy

    data = bytes(range(256)) * 4096  # 1 MiB: the proxy lets 64 KiB of its upload through, then stalls it
    digest = hashlib.sha256(data).hexdigest()
    proxy = StallingProxy(s3_server, limit=64 * 1024)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cardloop.store.artifacts import ArtifactStore; "
         "ArtifactStore(sys.argv[1], artifacts=sys.argv[2]).put(bytes(range(256)) * 4096, 'bin')",
         str(tmp_path), s3_url], env={**os.environ, "AWS_ENDPOINT_URL": proxy.url})
    try:
        assert proxy.stalled.wait(120), "the upload reached the proxy"
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(60) == -signal.SIGKILL
        assert proxy.finished.wait(60), "the server finished with the cut request"
    finally:
        writer.kill()
        proxy.close()
    assert s3_keys(s3_url) == []
    store = ArtifactStore(tmp_path, artifacts=s3_url)
    assert not store.has(digest)
    assert store.put(data, "bin") == digest and store.get(digest) == data, "the store is as usable as before"
