"""What a run's manifest says of the machine and the software: versions, the commit, the CPU, and
the torch threads its CPU jobs were computed at."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch


def environment(device: torch.device) -> dict:
    return {
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "torchattacks": _version("torchattacks"),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu": _cpu_name(),
    }


def job_threads(records) -> int | list[int]:
    """The torch threads the run's CPU jobs were computed at: one number, or the list when its cached
    jobs were made at several (the gate then says the numbers may not repeat exactly)."""
    counts = sorted({r.threads for r in records if r.device == "cpu" and r.threads is not None})
    if not counts:
        return torch.get_num_threads()
    return counts[0] if len(counts) == 1 else counts


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
