"""The suite's `evaluate:` section (one optional key per registered condition) and `gate:` defaults."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field, create_model

from kdbench.config.fields import Compile, Seed, Strict
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.evaluation.diagnostics import DiagnosticsParams
from kdbench.registry import summary
from kdbench.util.budgets import BATCH, EXAMPLES


def evaluate_model():
    """One optional key per registered condition, so a new condition needs no change here."""
    fields: dict[str, Any] = {
        "n": (
            Annotated[Optional[int], EXAMPLES],
            Field(None, ge=1, description="test examples (seeded, class-stratified); all when absent"),
        ),
        "seed": (Seed, 0),
        "batch_size": (Annotated[int, BATCH], Field(256, ge=1)),
        "compile": (Compile, False),
        "channels_last": (
            bool,
            Field(
                False,
                description="every model laid out channels-last while it is scored: a small CNN's forward and "
                "gradient passes are 1.2 to 1.8 times faster on a CPU; it rounds differently, so it enters the "
                "evaluation's hash",
            ),
        ),
        "diagnostics": (
            DiagnosticsParams,
            Field(default_factory=DiagnosticsParams, description="gradient-masking checks on every attacked model"),
        ),
        "fidelity_under_attack": (
            bool,
            Field(
                True,
                description="run each student's teachers on its own adversarial examples: agreement and "
                "KL(teacher || student) per attack cell, one teacher forward pass per attacked batch",
            ),
        ),
        "saliency": (
            int,
            Field(
                1000,
                ge=0,
                description="the first this many evaluated examples keep each model's input gradient of "
                "the true-class logit, for saliency agreement with the teacher; 0: none",
            ),
        ),
    }
    for name, cls in CONDITIONS.items():
        default = cls.Params() if name == "clean" else None  # clean always runs: agreement needs it
        fields[name] = (
            Optional[cls.Params],
            Field(default, description=summary(cls.__doc__) or None),
        )
    return create_model("EvaluateSpec", __base__=Strict, **fields)


EvaluateSpec = evaluate_model()


def conditions_of(evaluate: BaseModel) -> list:
    """The condition objects a suite asks for, in registry order."""
    out = []
    for name, cls in CONDITIONS.items():
        params = getattr(evaluate, name)
        if params is not None:
            out.extend(cls.build(params, evaluate.seed))
    return out


class GateSpec(Strict):
    """Defaults for `kdbench gate` on runs of this suite (command-line flags override them)."""

    tolerance: Optional[float] = Field(
        None, ge=0, description="percentage points a metric may fall before it can regress (default 1)"
    )
    tolerances: dict[str, float] = Field(
        default_factory=dict, description="per group (attack), condition (pgd) or condition:level (pgd:8/255)"
    )
    alpha: Optional[float] = Field(
        None, gt=0, lt=1, description="significance level after Holm correction (default 0.05)"
    )
