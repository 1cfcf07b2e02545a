"""Where data lives and where decoded copies are cached."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_ROOT_ENV = "KDBENCH_DATA_ROOT"
CACHE_DIR_ENV = "KDBENCH_CACHE_DIR"


def cache_dir() -> Path:
    """kdbench's per-user cache: `$KDBENCH_CACHE_DIR` if set, else platformdirs' user cache dir."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("kdbench"))


def decoded_cache_dir() -> Path:
    """Decoded ImageFolder arrays (.npy), so 60k JPEGs are decoded once per machine, not per run."""
    return cache_dir() / "decoded"


def resolve_root(cli_value: str | os.PathLike | None) -> Path:
    """The data root, first match wins:

    1. `cli_value` (the `--data-root` flag), when given;
    2. `$KDBENCH_DATA_ROOT`, when set and non-empty;
    3. `<cache>/data`, where <cache> is `$KDBENCH_CACHE_DIR` if set, else
       `platformdirs.user_cache_dir("kdbench")` (e.g. ~/.cache/kdbench/data on Linux):
       the place downloads go when nothing else is said.

    Nothing is created or checked here; loaders say what they looked for when it is missing.
    """
    if cli_value is not None and str(cli_value) != "":
        return Path(cli_value).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"
