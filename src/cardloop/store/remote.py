"""Artifact files at a URL, through fsspec: `s3://bucket/prefix` (s3fs: `pip install 'cardloop[s3]'`),
`gs://` (gcsfs), `memory://` (this process only: tests), or `file:///folder` (the local backend, fsync included).

Atomicity, per backend (readers see an artifact whole or not at all):
- object stores (S3, GCS, Azure) and memory://: one write of the complete bytes to the final key. An S3 PUT, or a
  multipart upload that only becomes an object on its last call, never exposes a partial object;
- any other file system: a hidden temp name in the same folder, then a move to the final name;
- file://: the local backend's temp file, fsync and rename.
Credentials and endpoints come from the backend's own configuration (for S3: the AWS_* environment variables
such as AWS_ENDPOINT_URL, or ~/.aws), never from the URL.
"""

from __future__ import annotations

import posixpath
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable, TypeVar

from cardloop.errors import StoreError
from cardloop.store.artifacts import ArtifactFiles, LocalFiles

T = TypeVar("T")
WHOLE_OBJECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})


def url_files(url: str, durable: bool) -> ArtifactFiles:
    """The artifact files at `url`; a URL that no installed backend can open is a StoreError saying what to do."""
    try:
        import fsspec
    except ImportError as error:
        raise StoreError(f"artifacts at {url} need fsspec: pip install 'cardloop[s3]'") from error
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as error:
        raise StoreError(f"artifacts at {url} need a backend that is not installed ({error}); for s3:// "
                         "pip install 'cardloop[s3]'") from error
    except ValueError as error:
        raise StoreError(f"artifacts at {url} cannot be opened ({error}); give an s3://, gs://, file:// "
                         "or memory:// URL") from error
    if _protocols(fs) & {"file", "local"}:
        return LocalFiles(Path(path), durable)
    return UrlFiles(url, fs, path.rstrip("/"))


class UrlFiles:
    """Artifact objects under `path` on an fsspec file system; every failure of the backend is a StoreError
    naming the URL."""

    def __init__(self, url: str, fs: Any, path: str):
        self.location, self.fs, self.path = url, fs, path
        self.whole_objects = bool(_protocols(fs) & WHOLE_OBJECT_PROTOCOLS)

    def names(self, digest: str) -> list[str]:
        folder = f"{self.path}/{digest[:2]}"
        listed = self._call(lambda: self.fs.ls(folder, detail=False, refresh=True), missing_is_none=True) or []
        return sorted(f"{digest[:2]}/{name}" for name in map(posixpath.basename, listed)
                      if name.startswith(f"{digest}."))

    def read(self, name: str) -> bytes | None:
        return self._call(lambda: self.fs.cat_file(f"{self.path}/{name}"), missing_is_none=True)

    def write(self, name: str, data: bytes) -> None:
        final = f"{self.path}/{name}"
        if self.whole_objects:
            self._call(lambda: self.fs.pipe_file(final, data))
            return
        folder, base = posixpath.split(final)
        temp = f"{folder}/.{base}.{secrets.token_hex(8)}.tmp"
        self._call(lambda: self.fs.makedirs(folder, exist_ok=True))
        try:
            self._call(lambda: self.fs.pipe_file(temp, data))
            self._call(lambda: self.fs.mv(temp, final))
        except BaseException:
            with suppress(Exception):
                self.fs.rm_file(temp)
            raise

    def where(self, name: str) -> str:
        return f"{self.location.rstrip('/')}/{name}"

    def _call(self, operation: Callable[[], T], missing_is_none: bool = False) -> T | None:
        """`operation()`, its errors as one StoreError naming the store's URL; None for a missing file (or
        bucket) when `missing_is_none`."""
        try:
            return operation()
        except FileNotFoundError as error:
            if missing_is_none:
                return None
            raise StoreError(f"the artifact store at {self.location} cannot be used ({error})") from error
        except Exception as error:
            raise StoreError(f"the artifact store at {self.location} cannot be used "
                             f"({type(error).__name__}: {error})") from error


def _protocols(fs: Any) -> set[str]:
    return {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
