"""Where the store lives (`$CARDLOOP_STORE` if set, else `./.cardloop` in the working directory), and what to
tell a user when its files cannot be used: a full disk, a read-only folder, damaged run records."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from cardloop.errors import StoreError

STORE_ENV = "CARDLOOP_STORE"
DEFAULT_ROOT = ".cardloop"
RECORDS_FILE = "runs.sqlite"

NO_SPACE_BYTES = 64 * 1024
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


def default_store_root() -> Path:
    """The store root: `$CARDLOOP_STORE` if set, else `./.cardloop` in the working directory."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_ROOT)


def store_problem(root: Path, error: BaseException) -> StoreError:
    """`error` (an OSError or sqlite3.Error met while using the store at `root`) as one sentence that names the
    store and says what to do; a StoreError is returned as it is, any other error as its type and message."""
    if isinstance(error, StoreError):
        return error
    if not isinstance(error, (OSError, sqlite3.Error)):
        return StoreError(f"{type(error).__name__}: {error}")
    where, reason = f"store '{root}'", _reason(error)
    kind = _kind(error, root)
    if kind == "full":
        return StoreError(f"{where} is out of disk space ({reason}); free some space and run again: what it "
                          "recorded before is kept")
    if kind == "read-only":
        return StoreError(f"{where} is read-only ({reason}); to run, give --store (or ${STORE_ENV}) a folder you "
                          "can write to: runs, show and export only read a store")
    if kind == "damaged":
        return StoreError(f"the run records of {where} are damaged ({reason}); move {root / RECORDS_FILE} aside "
                          "(or restore it from a backup) and cardloop starts a new history")
    if kind == "not a folder":
        return StoreError(f"{where} is a file, not a folder; give --store (or ${STORE_ENV}) a folder (it is "
                          "created if missing)")
    if isinstance(error, sqlite3.Error):
        return StoreError(f"the run records of {where} could not be read or written ({reason})")
    return StoreError(f"{where} cannot be used ({reason}); check that it is a folder you can read and write")


def file_problem(error: BaseException, root: Path | None) -> StoreError | None:
    """A file-system or SQLite error met by a command as one sentence: the store's (see `store_problem`) when
    it is about the store at `root` (default: `default_store_root()`) or names no file but a full or read-only
    disk, else naming the file (or just saying what it is); None for any other error."""
    root = Path(root) if root is not None else default_store_root()
    if isinstance(error, sqlite3.Error):
        return store_problem(root, error)
    if not isinstance(error, OSError):
        return None
    filename = Path(os.path.abspath(error.filename)) if isinstance(error.filename, (str, os.PathLike)) else None
    if filename is None:
        return store_problem(root, error) if _kind(error, root) else StoreError(f"{type(error).__name__}: {error}")
    if filename.is_relative_to(root.absolute()):
        return store_problem(root, error)
    if _kind(error, filename.parent) == "full":
        return StoreError(f"the disk that holds {filename} is full ({error.strerror}); free some space and try again")
    return StoreError(f"cannot use {filename}: {error.strerror or error}")


def _kind(error: BaseException, root: Path) -> str:
    if isinstance(error, sqlite3.Error):
        name = getattr(error, "sqlite_errorname", "")  # Python 3.11+; the message says the same
        text = str(error).lower()
        if name == "SQLITE_FULL" or "disk is full" in text or ("i/o error" in text and _no_space(root)):
            return "full"  # an I/O error, such as growing the WAL's index file, on a full disk
        if name.startswith("SQLITE_READONLY") or "readonly" in text:
            return "read-only"
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text or "malformed" in text:
            return "damaged"
        return ""
    if isinstance(error, OSError):
        if error.errno in _FULL_ERRNOS:
            return "full"
        if error.errno in _READ_ONLY_ERRNOS:
            return "read-only"
        if error.errno in (errno.ENOTDIR, errno.EEXIST):
            return "not a folder"
    return ""


def _no_space(root: Path) -> bool:
    """Whether the disk that holds the store has (all but) no space left for this user."""
    try:
        return shutil.disk_usage(root).free < NO_SPACE_BYTES
    except OSError:
        return False


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__
