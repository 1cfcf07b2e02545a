"""Training methods, found by the names the suite uses: clean-data (`baseline`, `label_smoothing`,
`kd`, `kd_mse`, `dkd`, `dist`, `kd_logit_std`), feature-based (`fitnets`, `at`, `rkd`, `crd`) and adversarial (`pgd_at`, `trades`, `ard`, `rslad`)."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BeforeValidator, Field

from ..registry import Registry
from .base import EnsembleMode, Method, MethodParams, teacher_log_probs

METHODS: Registry[type[Method]] = Registry("method")
register_method = METHODS.register

# Importing the modules registers them, in this order (`kdbench list`, the schema); a new method is
# one new module listed here. Clean-data methods (logit-based, then feature-based), then adversarial training and robust distillation.
from . import baseline, label_smoothing, kd, kd_mse, dkd, dist, kd_logit_std  # noqa: E402,F401,I001
from . import fitnets, at, rkd, crd  # noqa: E402,F401,I001
from . import pgd_at, trades, ard, rslad  # noqa: E402,F401


def _shorthand(value):
    """`method: baseline` means `method: {name: baseline}`."""
    return {"name": value} if isinstance(value, str) else value


def method_spec_type():
    """The suite's `method` field: a union of every registered method's parameters, keyed by `name`."""
    params = tuple(cls.Params for _, cls in METHODS.items())
    return Annotated[Union[params], Field(discriminator="name"), BeforeValidator(_shorthand)]


def build_method(spec: MethodParams, ensemble: EnsembleMode = "mean_probs") -> Method:
    return METHODS.get(spec.name)(spec, ensemble=ensemble)


__all__ = ["METHODS", "Method", "MethodParams", "build_method", "method_spec_type", "register_method", "teacher_log_probs"]
