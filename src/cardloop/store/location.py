"""Where a store keeps its artifacts: `<root>/artifacts`, or a URL (`s3://bucket/prefix`) that the store is
bound to by its config file `<root>/store.json`. The run records stay in `<root>/runs.sqlite` either way, so
every command that opens the store (run, show, export, the editor, the process executor's workers) finds the
artifacts its records name. A store with artifacts is never re-bound: its records would name missing artifacts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cardloop.errors import StoreError

CONFIG_FILE = "store.json"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def bound_artifacts(root: Path) -> str | None:
    """The artifacts URL of the store at `root`, None when it keeps them in `<root>/artifacts`. An OSError
    reading the config (a folder you may not read) is left to the caller, which names the store."""
    path = root / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # a store that is a file is refused where it is used
        return None
    except ValueError as error:
        raise StoreError(f"the store config {path} cannot be read ({error}); it should be JSON such as "
                         '{"artifacts": "s3://bucket/prefix"}') from error
    url = config.get("artifacts") if isinstance(config, dict) else None
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise StoreError(f"the store config {path} has no valid \"artifacts\" URL (such as s3://bucket/prefix)")
    return url


def bind_artifacts(root: Path, url: str) -> None:
    """Have the store at `root` keep its artifacts at `url` from now on (a no-op if it already does). Refused
    when it keeps them elsewhere already, so that no run record ever names an artifact the store cannot find."""
    from cardloop.store.artifacts import _write_atomically
    from cardloop.store.remote import url_files

    if not _URL.fullmatch(url):
        raise StoreError(f"--artifacts '{url}' is not a URL: give one such as s3://bucket/prefix, "
                         "file:///shared/folder or memory://name")
    bound = bound_artifacts(root)
    if bound == url:
        return
    if bound is not None:
        raise StoreError(f"store '{root}' keeps its artifacts at {bound}, not {url}: give --artifacts {bound} "
                         "(or none), or a new --store folder for artifacts at another URL")
    local = root / "artifacts"
    if local.is_dir() and any(local.iterdir()):
        raise StoreError(f"store '{root}' keeps its artifacts in {local}: to keep them at {url}, give a new "
                         "--store folder")
    url_files(url, durable=True)  # a URL that cannot be opened is refused before the store is bound to it
    root.mkdir(parents=True, exist_ok=True)
    _write_atomically(root / CONFIG_FILE, (json.dumps({"artifacts": url}, indent=2) + "\n").encode())
