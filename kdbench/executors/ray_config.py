"""What a Ray run is configured with: the resources each job kind reserves, retries and grouping
(`RayOptions`, from flags or $KDBENCH_RAY_*). Nothing here imports Ray."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kdbench.executors.base import EVAL_GROUP, KINDS
from kdbench.util.errors import UserError


class RayError(UserError, RuntimeError):
    """Ray is missing, unreachable, or the cluster cannot run this suite as configured."""


def per_kind(value, what: str, default: float) -> dict[str, float]:
    """A resource for each job kind, from a number (every kind) or text: "0.25" (every kind),
    "evaluate=0.5" (one kind; the others keep `default`), "0.25,teacher=1" (every kind, then the
    kinds that differ). `what` names the flag or variable in errors."""
    if isinstance(value, dict):
        return {k: float(value.get(k, default)) for k in KINDS}
    if isinstance(value, (int, float)):
        return dict.fromkeys(KINDS, float(value))
    out, overrides = dict.fromkeys(KINDS, float(default)), {}
    for item in str(value).split(","):
        kind, _, number = item.strip().rpartition("=")
        kind = kind.strip()
        if kind and kind not in KINDS:
            raise RayError(f"{what} {value!r}: {kind!r} is not a job kind; expected one of {', '.join(KINDS)}")
        try:
            amount = float(number)
        except ValueError:
            raise RayError(
                f"{what} {value!r}: expected a number, or KIND=NUMBER with KIND one of {', '.join(KINDS)}"
            ) from None
        if kind:
            overrides[kind] = amount
        else:
            out = dict.fromkeys(KINDS, amount)
    return out | overrides


@dataclass(frozen=True)
class RayOptions:
    """How jobs are laid out on the cluster; none of it enters a job's hash. The CPUs and GPUs a
    task reserves are per job kind (teacher, student, evaluate)."""

    address: str | None = None  # None: start a local cluster; "auto" or HOST:PORT: join one
    cpus_per_job: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 1.0))
    gpus_per_job: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    eval_group: int = (
        EVAL_GROUP  # evaluation jobs scored together in one task (a perturbed batch is made once per group)
    )
    max_retries: int = 3  # reruns of a task whose worker died

    @classmethod
    def from_env(cls, **given) -> RayOptions:
        """`given` (the command line; None = not given) over $KDBENCH_RAY_<FIELD> over the defaults."""
        values, source = {}, {}
        for name, kind in (
            ("address", str),
            ("cpus_per_job", str),
            ("gpus_per_job", str),
            ("eval_group", int),
            ("max_retries", int),
        ):
            flag = f"--{name.replace('_', '-')}"
            if given.get(name) is not None:
                raw = given[name]
            elif f"KDBENCH_RAY_{name.upper()}" in os.environ:
                flag = f"$KDBENCH_RAY_{name.upper()}"
                raw = os.environ[flag[1:]]
                try:
                    raw = kind(raw)
                except ValueError:
                    raise RayError(f"{flag}={raw!r}: expected {'a number' if kind is not str else 'text'}") from None
            else:
                continue
            source[name] = flag
            values[name] = (
                per_kind(raw, flag, 1.0 if name == "cpus_per_job" else 0.0) if name.endswith("_per_job") else raw
            )
        opts = cls(**values)
        for name, low, strict in (("cpus_per_job", 0.0, True), ("gpus_per_job", 0.0, False)):
            flag = source.get(name, f"--{name.replace('_', '-')}")
            for kind, amount in getattr(opts, name).items():
                if amount < low or (strict and amount == low):
                    raise RayError(f"{flag}: {kind} {amount:g}; expected {'more than 0' if strict else '0 or more'}")
                # Ray's rule, refused here before anything runs
                if name == "gpus_per_job" and amount > 1 and amount != int(amount):
                    raise RayError(
                        f"{flag}: {kind} {amount:g}; above 1 GPU a task must ask for a whole number (fractions only "
                        "below 1)"
                    )
        if opts.eval_group < 1 or opts.max_retries < 0:
            raise RayError("Ray options: eval-group must be >= 1 and max-retries >= 0")
        return opts

    @property
    def threads(self) -> dict[str, int]:
        """torch threads in a task, per kind: its CPU share, so that results match a local run with
        --threads of that number."""
        return {k: max(1, int(c)) for k, c in self.cpus_per_job.items()}

    def resources(self, kind: str) -> dict[str, float]:
        return {"num_cpus": self.cpus_per_job[kind], "num_gpus": self.gpus_per_job[kind]}
