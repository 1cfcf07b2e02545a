"""Writes that either land whole or not at all: a crash or Ctrl-C never leaves half a file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

# this host, in the names of temporary parts: a pid means something only on the host that made it
HOST_TAG = "h" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


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
    # the pid and host in the name let a later run tell a dead run's leftovers from a live run's work
    return f".{path.name}.{os.getpid()}.{HOST_TAG}."


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
    """Delete `.NAME.PID.HOST.*.part` leftovers of processes of this host that no longer run
    (kill -9, power loss); those of live processes, of other hosts (a cluster's workers on a shared
    store), and anything else, are left alone. Returns what was removed."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for entry in directory.glob(".*.part"):
        parts = entry.name.split(".")
        at = next((i for i in range(2, len(parts) - 1) if parts[i].isdigit()), None)
        if at is None:
            continue
        # names written before the host tag existed count as this host's
        host = parts[at + 1] if at + 1 < len(parts) - 1 and re.fullmatch(r"h[0-9a-f]{8}", parts[at + 1]) else HOST_TAG
        if host != HOST_TAG or _alive(int(parts[at])):
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
