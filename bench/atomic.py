"""Writes that either land whole or not at all: a crash or Ctrl-C never leaves half a file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_part_prefix(path), suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _part_prefix(path: Path) -> str:
    # the pid in the name lets a later run tell a dead run's leftovers from a live run's work
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = True):
    """Yield a temporary directory that becomes `path` only on success.

    An existing `path` is replaced when `replace` (the old one is moved aside first, so `path`
    is never missing while a reader looks), else kept and ours discarded: content-addressed job
    outputs are equal, and a finished one must never disappear under a concurrent run.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_part_prefix(path), suffix=".part", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            os.rename(tmp, path)  # fails when path exists (a non-empty directory) or is a file
        except OSError:
            if not path.exists():
                raise
            if replace:
                old = Path(tempfile.mkdtemp(prefix=_part_prefix(path), suffix=".old.part", dir=path.parent))
                os.replace(path, old)
                os.rename(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_parts(directory: str | os.PathLike) -> list[Path]:
    """Delete `.NAME.PID.*.part` leftovers of processes that no longer run (kill -9, power loss);
    those of live processes, and anything else, are left alone. Returns what was removed."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for entry in directory.glob(".*.part"):
        parts = entry.name.split(".")
        pid = next((int(p) for p in parts[2:-1] if p.isdigit()), None)
        if pid is None or _alive(pid):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
