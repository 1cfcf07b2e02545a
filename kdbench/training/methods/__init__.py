"""Training methods, found by the names the suite uses: clean-data (`baseline`, `label_smoothing`,
`kd`, `kd_mse`, `dkd`, `dist`, `kd_logit_std`), feature-based (`fitnets`, `at`, `rkd`, `crd`) and
adversarial (`pgd_at`, `trades`, `ard`, `rslad`)."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BeforeValidator, Field

from kdbench.registry import Registry
from kdbench.training.methods.base import EnsembleMode, Method, MethodParams, teacher_log_probs

METHODS: Registry[type[Method]] = Registry("method")
register_method = METHODS.register

# A new method is one new module that registers itself. Listed in this order (`kdbench list`, the
# schema): clean-data methods (logit-based, then feature-based), then adversarial training and
# robust distillation; a module not named here comes after them.
METHODS.declare_from_sources(
    __name__,
    __path__,
    "register_method",
    first=[
        "baseline",
        "label_smoothing",
        "kd",
        "kd_mse",
        "dkd",
        "dist",
        "kd_logit_std",
        "fitnets",
        "at",
        "rkd",
        "crd",
        "pgd_at",
        "trades",
        "ard",
        "rslad",
    ],
)


def _shorthand(value):
    """`method: baseline` means `method: {name: baseline}`."""
    return {"name": value} if isinstance(value, str) else value


def method_spec_type():
    """The suite's `method` field: a union of every registered method's parameters, keyed by `name`."""
    params = tuple(cls.Params for _, cls in METHODS.items())
    return Annotated[Union[params], Field(discriminator="name"), BeforeValidator(_shorthand)]


def twin_pairs(students) -> list[tuple[str, str]]:
    """The default compare pairs, (distilled, baseline): each student of `students` (name, arch,
    method, role) whose role is not baseline, against the one baseline of its architecture trained
    by its method's twin (`baseline`; `pgd_at` for robust methods); none when there are several.
    A method not registered here (a plugin the reader lacks) is taken to twin `baseline`."""
    students = list(students)
    out = []
    for name, arch, method, role in students:
        if role == "baseline":
            continue
        twin = METHODS.get(method).twin if method in METHODS else "baseline"
        twins = [
            b
            for b, b_arch, b_method, b_role in students
            if b_role == "baseline" and b_method == twin and b_arch == arch
        ]
        if len(twins) == 1:
            out.append((name, twins[0]))
    return out


def build_method(spec: MethodParams, ensemble: EnsembleMode = "mean_probs") -> Method:
    return METHODS.get(spec.name)(spec, ensemble=ensemble)


__all__ = [
    "METHODS",
    "Method",
    "MethodParams",
    "build_method",
    "method_spec_type",
    "register_method",
    "teacher_log_probs",
    "twin_pairs",
]
