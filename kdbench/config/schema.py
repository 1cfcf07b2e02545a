"""The suite model for the registries as they are now. The module-level `Suite` is built from
kdbench's own methods and conditions when the package is imported; a plugin that registers a
method or a condition afterwards needs a model that knows it, and `suite_model()` builds one (a
subclass of `Suite`, so that every `isinstance` check holds) when the registries have grown."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, create_model

from kdbench.config.evaluate import evaluate_model
from kdbench.config.models import StudentSpec, TeacherSpec
from kdbench.config.suite import Name, Suite
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.training.methods import METHODS, method_spec_type


def _generations() -> tuple[int, int]:
    return METHODS.generation, CONDITIONS.generation


_BUILT_IN = _generations()  # the registries the module-level Suite was built from
_CACHE: dict[tuple[int, int], type[Suite]] = {}


def suite_model() -> type[Suite]:
    """`Suite`, or a subclass whose `method` fields and `evaluate` section know every method and
    condition registered since (plugins)."""
    key = _generations()
    if key == _BUILT_IN:
        return Suite
    if key not in _CACHE:
        method = method_spec_type()
        teacher = create_model(
            "TeacherSpec",
            __base__=TeacherSpec,
            method=(Optional[method], Field(None, description=TeacherSpec.model_fields["method"].description)),
        )
        student = create_model(
            "StudentSpec",
            __base__=StudentSpec,
            method=(method, Field(description=StudentSpec.model_fields["method"].description)),
        )
        evaluate = evaluate_model()
        _CACHE[key] = create_model(
            "Suite",
            __base__=Suite,
            teachers=(dict[Name, teacher], Field(default_factory=dict)),
            students=(dict[Name, student], Field(default_factory=dict)),
            evaluate=(evaluate, Field(default_factory=evaluate)),
        )
    return _CACHE[key]
