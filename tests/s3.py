"""A real S3-compatible server for the tests of a store on s3:// (moto's server mode on loopback, as s3fs's own
tests use): the S3 API over HTTP, reached through s3fs and boto3 exactly as a cloud bucket is. Credentials and
endpoint are the AWS_* environment variables (which the process executor's workers inherit).

Use: `from tests.s3 import s3_url  # noqa: F401 (fixture)`; the session's server, `s3_server`, is in
tests/conftest.py, so that the session's Ray (`ray_cluster`) can be started after it, with its settings.
"""

from __future__ import annotations

import secrets
import socket
import threading

import pytest

from tests.conftest import S3_MISSING

pytest.importorskip("moto.server", reason=S3_MISSING)
pytest.importorskip("s3fs", reason=S3_MISSING)


@pytest.fixture
def s3_url(s3_server) -> str:
    """`s3://<a new bucket>/artifacts` on the test server."""
    import boto3

    bucket = f"cardloop-{secrets.token_hex(6)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/artifacts"


def s3_keys(url: str) -> list[str]:
    """Every key of the bucket of `url`, read straight from the server (boto3, no cache)."""
    import boto3

    bucket = url.removeprefix("s3://").split("/")[0]
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def overwrite(url: str, key: str, data: bytes) -> None:
    """Replace the object `key` of the bucket of `url` through boto3 (a real PUT, as a damaged upload would)."""
    import boto3

    bucket = url.removeprefix("s3://").split("/")[0]
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


class StallingProxy:
    """A TCP relay on 127.0.0.1 in front of `endpoint` that forwards, on each connection, the first `limit` bytes
    the client sends and then nothing more: an upload through it stalls part-way, deterministically (`stalled`),
    so that a test can kill the uploading process mid-write. When that client is gone, it closes its side to the
    server and waits until the server has finished with the request and closed too (`finished`)."""

    def __init__(self, endpoint: str, limit: int):
        host, port = endpoint.removeprefix("http://").split(":")
        self.upstream, self.limit = (host, int(port)), limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stalled, self.finished = threading.Event(), threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        back = threading.Thread(target=_copy, args=(server, client))
        back.start()
        sent, stalled = 0, False
        while chunk := _receive(client):
            forward = chunk[:max(self.limit - sent, 0)]
            server.sendall(forward)
            sent += len(forward)
            if sent >= self.limit and not stalled:
                stalled = True
                self.stalled.set()
        server.shutdown(socket.SHUT_WR)
        back.join()
        server.close()
        client.close()
        if stalled:
            self.finished.set()

    def close(self) -> None:
        self.listener.close()


def _copy(source: socket.socket, target: socket.socket) -> None:
    while chunk := _receive(source):
        try:
            target.sendall(chunk)
        except OSError:
            pass


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except OSError:
        return b""
