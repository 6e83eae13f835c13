"""Where the store lives: `$CARDLOOP_STORE` if set, else `./.cardloop` in the working directory."""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "CARDLOOP_STORE"
DEFAULT_ROOT = ".cardloop"


def default_store_root() -> Path:
    """The store root: `$CARDLOOP_STORE` if set, else `./.cardloop` in the working directory."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_ROOT)
