"""Real small and read-only file systems for the tests of a full disk and a read-only store: tmpfs mounts.

They need root and permission to mount (a container may refuse it); the tests that use them skip otherwise,
saying why. Root ignores file permissions, so a read-only store is a read-only mount, not a chmod.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    """A small file system of its own at `folder`, unmounted after the test."""
    folder.mkdir(exist_ok=True)
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                 capture_output=True, text=True)
    except OSError as error:
        pytest.skip(f"a real small or read-only file system needs `mount`: {error}")
    if mounted.returncode != 0:
        pytest.skip(f"a real small or read-only file system needs `mount` (root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def read_only(folder: Path) -> None:
    """Remount the tmpfs at `folder` read-only."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write to a file in `folder` until the disk is full."""
    with open(folder / "filler", "wb", buffering=0) as filler:
        with pytest.raises(OSError, match="No space left"):
            while True:
                filler.write(b"\0" * 4096)
