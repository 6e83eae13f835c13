"""The artifact store: content-addressed files, written atomically and checked against their hash on every read.

Layout: `<root>/artifacts/<first 2 hex digits>/<sha256>.<extension>`. A file only ever appears at its final
path complete (temp file in the same folder, fsync, rename), so a crash leaves at most a hidden temp file.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cardloop.errors import ArtifactCorrupt, ArtifactUndecodable, StoreError
from cardloop.kinds import ANY
from cardloop.store.codec import CodecContext
from cardloop.store.root import default_store_root

__all__ = ["ArtifactRef", "ArtifactStore", "default_store_root", "undecodable_as"]

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


class ArtifactStore:
    """Content-addressed artifact files under `root` (default: `default_store_root()`)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, durable: bool = True):
        """`durable=False` skips the fsyncs: writes stay atomic (temp file, rename), and a file that a power
        loss tears is still never served, because every read checks the hash. Runs write that way."""
        self.root = Path(root) if root is not None else default_store_root()
        self.artifacts_dir = self.root / "artifacts"
        self.durable = durable

    def put(self, data: bytes, extension: str) -> str:
        """Store bytes and return their sha256; an intact file with the same content is left as it is."""
        if not _EXTENSION.fullmatch(extension):
            raise StoreError(f"'{extension}' is not a valid artifact extension")
        digest = hashlib.sha256(data).hexdigest()
        path = self._folder(digest) / f"{digest}.{extension}"
        if path.exists() and _sha256_of(path) == digest:
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data, self.durable)
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes stored under `digest`, after checking that they still hash to it."""
        path = self._find(digest)
        if path is None:
            raise StoreError(f"artifact {digest} is missing from the store at {self.root}")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArtifactCorrupt(f"artifact {digest} is corrupt: its content does not match its hash ({path})")
        return data

    def has(self, digest: str) -> bool:
        """Whether a file for `digest` exists (cheap: its content is checked by `get` and `verify`)."""
        return self._find(digest) is not None

    def verify(self, digest: str) -> bool:
        """Whether `digest` is stored and its content still matches its hash."""
        path = self._find(digest)
        return path is not None and _sha256_of(path) == digest

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

    def _folder(self, digest: str) -> Path:
        return self.artifacts_dir / digest[:2]

    def _find(self, digest: str) -> Path | None:
        if not _DIGEST.fullmatch(digest):
            raise StoreError(f"'{digest}' is not an artifact digest (64 lowercase hex digits)")
        folder = self._folder(digest)
        if not folder.is_dir():
            return None
        return next(iter(sorted(folder.glob(f"{digest}.*"))), None)


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


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
