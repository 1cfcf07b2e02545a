"""torch.compile for the training step and the attack steps (the recipe's and evaluate's
`compile`): `default` (inductor's fused kernels) or `reduce-overhead` (also CUDA graphs, which
replay a step's kernels without launching them one by one). Its gains are on GPUs: on the CPU
the model runs eager, and where compiling fails it falls back to eager; either way one line says
why, and the numbers are then those of `compile: false`."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

BACKEND = "inductor"


def eager_reason(device) -> str | None:
    """Why a model on `device` runs eager whatever `compile` says; None where it compiles."""
    if torch.device(device).type != "cuda":
        return "on the CPU torch.compile gains little and costs minutes of compiling, so kdbench compiles on GPUs only"
    return None


def compiled(module: nn.Module, mode, device, what: str, log: Callable[[str], None]) -> nn.Module:
    """`module` compiled for `device` in `mode` (False: `module` itself)."""
    if not mode:
        return module
    why = eager_reason(device)
    if why:
        log(f"{what}: compile {mode!r} runs eager: {why}")
        return module
    return Compiled(module, mode, what, log)


class Compiled(nn.Module):
    """`module`, called through torch.compile until compiling fails, then eager (said once). The
    module is its only child: train()/eval() reach it, and its parameters are the optimiser's."""

    def __init__(self, module: nn.Module, mode: str, what: str, log: Callable[[str], None]):
        super().__init__()
        self.module = module
        # kept out of the module tree: the compiled wrapper shares the module's parameters
        object.__setattr__(self, "_compiled", torch.compile(module, mode=mode, backend=BACKEND))
        self.mode, self.what, self.log = mode, what, log

    def forward(self, *args, **kwargs):
        if self._compiled is not None:
            try:
                return self._compiled(*args, **kwargs)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to compile (no Triton, an unsupported op): eager
                cause = _innermost(exc)
                first = (str(cause).strip().splitlines() or [""])[0][:200]
                self.log(f"{self.what}: torch.compile {self.mode!r} failed ({type(cause).__name__}: {first}); eager")
                object.__setattr__(self, "_compiled", None)
        return self.module(*args, **kwargs)


def _innermost(exc: BaseException) -> BaseException:
    """The error behind dynamo's wrappers (BackendCompilerFailed says only which backend raised)."""
    seen = {id(exc)}
    while (inner := getattr(exc, "inner_exception", None) or exc.__cause__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc
