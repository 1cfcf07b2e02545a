"""Training methods, found by the names the suite uses: clean-data (`baseline`, `label_smoothing`,
`kd`, `kd_mse`, `dkd`, `dist`, `kd_logit_std`), feature-based (`fitnets`, `at`, `rkd`, `crd`, `sp`,
`pkt`, `vid`, `nst`) and adversarial (`pgd_at`, `trades`, `ard`, `rslad`)."""

from __future__ import annotations

import typing
from typing import Annotated, Union

from pydantic import BaseModel, BeforeValidator, Field

from kdbench.registry import RegistrationError, Registry
from kdbench.training.methods.base import EnsembleMode, Method, MethodParams, teacher_log_probs


def _check_method(name: str, cls) -> None:
    """A method is a Method subclass whose `Params` is a MethodParams with `name: Literal["<name>"]`:
    the suite's `method:` union is keyed by that literal, so another one would register the
    method under two names."""
    where = f"method '{name}' ({getattr(cls, '__qualname__', cls)})"
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise RegistrationError(f"{where}: register a subclass of kdbench.Method (or TeacherMethod)")
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise RegistrationError(f"{where}: `Params` must be a pydantic model subclassing kdbench.MethodParams")
    field = params.model_fields.get("name")
    literal = typing.get_args(field.annotation) if field is not None else ()
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        raise RegistrationError(
            f'{where}: its parameters model {params.__name__} needs the field `name: Literal["{name}"] = "{name}"`'
        )
    if literal != (name,) or field.default != name:
        shown = ", ".join(repr(v) for v in literal)
        raise RegistrationError(
            f"{where}: its parameters model {params.__name__} says name is Literal[{shown}]"
            f"{'' if field.default == name else f' (default {field.default!r})'}, but the decorator registers "
            f'\'{name}\': make them the same (`name: Literal["{name}"] = "{name}"`)'
        )


METHODS: Registry[type[Method]] = Registry("method", check=_check_method)
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
        "sp",
        "pkt",
        "vid",
        "nst",
        "cc",
        "ft",
        "ab",
        "fsp",
        "pgd_at",
        "trades",
        "ard",
        "rslad",
        "iad",
        "adaad",
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
