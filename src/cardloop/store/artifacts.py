"""The artifact store: content-addressed files, written atomically and checked against their hash on every read.

Layout: `<root>/artifacts/<first 2 hex digits>/<sha256>.<extension>`, or the same names under a URL that the
store is bound to (store/location.py, store/remote.py: `s3://bucket/prefix`, `memory://...`). A file only ever
appears at its final name complete (locally: temp file in the same folder, fsync, rename), so a crash leaves at
most a hidden temp file; whatever the backend, a read whose bytes do not hash to their name is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from cardloop.errors import ArtifactCorrupt, ArtifactUndecodable, StoreError
from cardloop.kinds import ANY
from cardloop.store.codec import CodecContext
from cardloop.store.root import default_store_root

__all__ = ["ArtifactFiles", "ArtifactRef", "ArtifactStore", "LocalFiles", "default_store_root", "undecodable_as"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_EXTENSION = re.compile(r"[A-Za-z0-9]+(\.[A-Za-z0-9]+)*")


@dataclass(frozen=True)
class ArtifactRef:
    """One stored value: its content hash, kind, the codec that wrote it, its size in bytes and a summary."""

    digest: str
    kind: str
    codec: str
    size: int
    summary: dict[str, Any] = field(default_factory=dict, compare=False)


class ArtifactFiles(Protocol):
    """Where artifact bytes live, by name (`<2 hex digits>/<sha256>.<extension>`): a local folder or a URL.
    `write` makes a name appear complete or not at all; hashing and checking stay in ArtifactStore."""

    location: str

    def names(self, digest: str) -> list[str]:
        """The stored names of `digest`, sorted."""

    def read(self, name: str) -> bytes | None:
        """The bytes stored under `name`, None if there are none."""

    def write(self, name: str, data: bytes) -> None:
        """Store `data` under `name` atomically: readers see nothing or all of it."""

    def where(self, name: str) -> str:
        """The path or URL of `name`, for messages."""


class LocalFiles:
    """Artifact files in a local folder (a shared file system mounted here counts): temp file, fsync, rename."""

    def __init__(self, folder: Path, durable: bool):
        self.folder, self.durable, self.location = folder, durable, str(folder)

    def names(self, digest: str) -> list[str]:
        folder = self.folder / digest[:2]
        if not folder.is_dir():
            return []
        return sorted(f"{digest[:2]}/{path.name}" for path in folder.glob(f"{digest}.*"))

    def read(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data, self.durable)

    def where(self, name: str) -> str:
        return str(self.folder / name)


class ArtifactStore:
    """Content-addressed artifacts of the store at `root` (default: `default_store_root()`), kept in
    `<root>/artifacts`, or at the URL `artifacts` (default: the one the store is bound to, store/location.py)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, durable: bool = True,
                 artifacts: str | None = None):
        """`durable=False` skips the fsyncs of local files: writes stay atomic (temp file, rename), and a file
        that a power loss tears is still never served, because every read checks the hash. Runs write that way.
        An object store's writes are durable once they return, whatever `durable` says."""
        from cardloop.store.location import bound_artifacts

        self.root = Path(root) if root is not None else default_store_root()
        self.durable = durable
        url = artifacts if artifacts is not None else bound_artifacts(self.root)
        if url is None:
            self.artifacts_dir: Path | None = self.root / "artifacts"
            self.files: ArtifactFiles = LocalFiles(self.artifacts_dir, durable)
        else:
            from cardloop.store.remote import url_files

            self.artifacts_dir = None
            self.files = url_files(url, durable)

    def put(self, data: bytes, extension: str) -> str:
        """Store bytes and return their sha256; an intact file with the same content is left as it is."""
        if not _EXTENSION.fullmatch(extension):
            raise StoreError(f"'{extension}' is not a valid artifact extension")
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest[:2]}/{digest}.{extension}"
        if _intact(self.files.read(name), digest):
            return digest
        self.files.write(name, data)
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes stored under `digest`, after checking that they still hash to it."""
        names = self._names(digest)
        data = self.files.read(names[0]) if names else None
        if data is None:
            raise StoreError(f"artifact {digest} is missing from the store at {self.files.location}")
        if not _intact(data, digest):
            raise ArtifactCorrupt(f"artifact {digest} is corrupt: its content does not match its hash "
                                  f"({self.files.where(names[0])})")
        return data

    def has(self, digest: str) -> bool:
        """Whether a file for `digest` exists (cheap: its content is checked by `get` and `verify`)."""
        return bool(self._names(digest))

    def verify(self, digest: str) -> bool:
        """Whether `digest` is stored and its content still matches its hash."""
        names = self._names(digest)
        return bool(names) and _intact(self.files.read(names[0]), digest)

    def save(self, kind: str, value: Any, ctx: CodecContext | None = None) -> ArtifactRef:
        """Encode a port value with its kind's codec (for `any`, its type's codec) and store it."""
        from cardloop.store.codecs import codec_for_kind

        codec = codec_for_kind(kind, value)
        data = codec.encode(value, ctx or CodecContext())
        digest = self.put(data, codec.extension)
        return ArtifactRef(digest, codec.kind, codec.name, len(data), codec.summarize(value))

    def load(self, ref: ArtifactRef | tuple[str, str], ctx: CodecContext | None = None) -> Any:
        """Decode a stored value from its ref, or from `(digest, kind)`. Bytes that pass their hash check but
        do not decode raise ArtifactUndecodable, whatever the codec raised."""
        from cardloop.store.codecs import codec_for_kind, codec_named

        if isinstance(ref, ArtifactRef):
            digest, codec = ref.digest, codec_named(ref.codec)
        else:
            digest, kind = ref
            if kind == ANY:
                raise StoreError(f"artifact {digest} of kind 'any' must be loaded by its ArtifactRef, "
                                 "which names the codec that wrote it")
            codec = codec_for_kind(kind)
        data = self.get(digest)
        return undecodable_as(digest, codec.name, lambda: codec.decode(data, ctx or CodecContext()))

    def _names(self, digest: str) -> list[str]:
        if not _DIGEST.fullmatch(digest):
            raise StoreError(f"'{digest}' is not an artifact digest (64 lowercase hex digits)")
        return self.files.names(digest)


def undecodable_as(digest: str, codec: str, decode: Callable[[], Any]) -> Any:
    """What `decode` returns from the bytes of artifact `digest`; whatever it raises (a codec meeting bytes it
    never wrote) becomes ArtifactUndecodable naming the artifact and the codec."""
    try:
        return decode()
    except ArtifactCorrupt:
        raise
    except Exception as error:
        reason = str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}"
        raise ArtifactUndecodable(f"artifact {digest} ({codec}) passes its hash check but does not decode: "
                                  f"{reason}") from error


def _intact(data: bytes | None, digest: str) -> bool:
    return data is not None and hashlib.sha256(data).hexdigest() == digest


def _write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so that readers see no file or the whole file, never a part of it;
    `durable` also flushes the data and the rename to disk before returning."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
