"""Portable mode (`reproducible: portable`, `--portable`): the same bytes from every CPU job on any
x86-64 CPU, at some cost in speed.

What a CPU's instruction set changes in torch's arithmetic, and what pins it:
- ATen's kernels are compiled several times (DEFAULT, AVX2, AVX512) and chosen at start-up by the
  CPU: `ATEN_CPU_CAPABILITY=default` picks the baseline build everywhere. It is read once, when
  torch is imported, so it must be in the environment before that.
- oneDNN (mkldnn) picks its convolution kernels by the CPU too: it is switched off
  (`torch.backends.mkldnn.enabled = False`), so convolutions take ATen's own path.
- MKL, which does the matrix products, picks its code path by the CPU: `MKL_CBWR=COMPATIBLE` asks
  for its conditional-numerical-reproducibility path, the same on every x86-64 CPU. It is read
  when MKL loads, with torch.
- NumPy (which generates the corruptions) dispatches its math (exp, sin, log, ...) to AVX2 and
  AVX-512 versions that round differently: `NPY_DISABLE_CPU_FEATURES` lists every target it
  dispatches to, so its baseline build runs everywhere. Read when NumPy is imported.
- Reductions split work by thread, and the split changes the order of additions: every job runs
  at one thread (OpenMP and MKL too), so the thread count is fixed, not the machine's.
"""

from __future__ import annotations

import os
import sys

from kdbench.util.errors import UserError

# what must be in the environment before torch and NumPy are imported (and in every worker's)
ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
NUMPY_FEATURES = "NPY_DISABLE_CPU_FEATURES"
THREADS = 1
MODES = ("machine", "portable")


class PortableError(UserError):
    """Portable mode asked for in a process whose torch was imported without its settings."""


def _numpy_core():
    import numpy as np

    major = int(np.__version__.split(".")[0])
    if major >= 2:
        from numpy._core import _multiarray_umath as core
    else:  # pragma: no cover - NumPy 1.x
        from numpy.core import _multiarray_umath as core
    return core


def environment() -> dict:
    """Everything portable mode sets: ENVIRONMENT and NumPy's dispatch targets, all disabled."""
    return {**ENVIRONMENT, NUMPY_FEATURES: " ".join(_numpy_core().__cpu_dispatch__)}


def _numpy_pinned() -> bool:
    core = _numpy_core()
    return not any(core.__cpu_features__.get(target) for target in core.__cpu_dispatch__)


def environment_ready() -> bool:
    return all(os.environ.get(k) == v for k, v in ENVIRONMENT.items()) and bool(os.environ.get(NUMPY_FEATURES))


def pinned_environment(base: dict | None = None) -> dict:
    """`base` (default: this process's environment) with portable mode's settings."""
    return {**(os.environ if base is None else base), **environment()}


def check_ready() -> None:
    """Refuse, saying what to do, when this process cannot compute portably: torch was imported,
    or is about to be, without the pinned environment (its capability is fixed at import)."""
    torch = sys.modules.get("torch")
    capability = torch.backends.cpu.get_cpu_capability() if torch is not None else None
    numpy_ok = _numpy_pinned()
    if environment_ready() and capability in (None, "DEFAULT") and numpy_ok:
        return
    shown = " ".join(f"{k}='{v}'" for k, v in environment().items())
    if capability not in (None, "DEFAULT"):
        now = f"torch was imported with CPU capability {capability}"
    elif not numpy_ok:
        now = "NumPy was imported with its AVX2/AVX-512 code enabled"
    else:
        now = "the environment is not set"
    raise PortableError(
        f"portable mode needs its settings before torch is imported ({now}): run `kdbench run ... --portable` "
        f"(the command line sets them), or start Python with {shown}"
    )


def apply() -> None:
    """In a process whose environment is pinned: the runtime switches (oneDNN off, one thread)."""
    import torch

    check_ready()
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(THREADS)


def describe() -> dict:
    """What the manifest records of the mode: the pins and torch's capability as found."""
    import torch

    return {
        "mode": "portable",
        "environment": environment(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.enabled),
        "threads": torch.get_num_threads(),
    }


def reexec_pinned(argv: list[str]) -> None:
    """Replace this process by `python -m kdbench argv` with the pinned environment (the command
    line's way to set what must precede torch's import). Does not return."""
    env = pinned_environment()
    env["KDBENCH_PORTABLE_REEXEC"] = "1"  # a second exec would loop: check_ready then says why
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "kdbench", *argv], env)
