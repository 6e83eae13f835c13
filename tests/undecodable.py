"""Artifacts that pass their hash check but do not decode: a codec's safetensors bytes with their header
rewritten (tensor entries, or cardloop's metadata entry). Put through a real ArtifactStore, their hash is
their own, so only decoding can find them out."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path
from typing import Any, Callable


def with_header(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Safetensors `data` with its header JSON changed in place by `change`; the tensor bytes stay."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    change(header)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + length:]


def with_metadata(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Safetensors `data` with cardloop's metadata (format, recipe...) changed in place by `change`."""

    def rewrite(header: dict[str, Any]) -> None:
        metadata = json.loads(header["__metadata__"]["cardloop"])
        change(metadata)
        header["__metadata__"]["cardloop"] = json.dumps(metadata)

    return with_header(data, rewrite)


def offsets_past_the_end(data: bytes) -> bytes:
    """The first tensor's byte range reaches past the end of the file."""

    def stretch(header: dict[str, Any]) -> None:
        entry = next(value for name, value in header.items() if name != "__metadata__")
        entry["data_offsets"] = [entry["data_offsets"][0], len(data) * 1000]

    return with_header(data, stretch)


def renamed(data: bytes, old: str, new: str) -> bytes:
    """The tensor `old` is called `new`."""
    return with_header(data, lambda header: header.__setitem__(new, header.pop(old)))


def retyped(data: bytes, name: str, dtype: str) -> bytes:
    """The tensor `name` claims the dtype `dtype` (one of the same width keeps the byte ranges valid)."""
    return with_header(data, lambda header: header[name].update(dtype=dtype))


def reshaped(data: bytes, name: str, shape: list[int]) -> bytes:
    """The tensor `name` claims the shape `shape` (one with as many elements keeps the byte ranges valid)."""
    return with_header(data, lambda header: header[name].update(shape=shape))


def swap_final_state(store_root: Path, run_id: str, member: str, change: Callable[[bytes], bytes]) -> str:
    """Make the run's last snapshot holding `member` name, instead of it, an artifact with the bytes `change`
    makes of it (written through the real ArtifactStore, recorded in the real database); its digest."""
    from cardloop.store.artifacts import ArtifactStore
    from cardloop.store.records import RunRecords

    snapshot = [s for s in RunRecords(store_root / "runs.sqlite").state_snapshots(run_id) if member in s.members][-1]
    artifacts = ArtifactStore(store_root)
    old = snapshot.members[member]["digest"]
    new = artifacts.put(change(artifacts.get(old)), "safetensors")
    with sqlite3.connect(store_root / "runs.sqlite") as database:
        database.execute('UPDATE state_snapshots SET members = replace(members, ?, ?) WHERE run_id = ? AND "group" = ?',
                         (old, new, run_id, snapshot.group))
    database.close()
    return new
