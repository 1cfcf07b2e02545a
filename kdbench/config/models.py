"""The suite's `teachers:` and `students:` entries."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from kdbench.config.fields import Seed, Strict, architectures, registered_in
from kdbench.config.recipe import TrainOverride
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.training.methods import METHODS, method_spec_type
from kdbench.training.methods.base import EnsembleMode


class TeacherSpec(Strict):
    """A teacher trained from a recipe (arch), loaded from a checkpoint (checkpoint + arch), or
    taken from RobustBench's zoo (robustbench)."""

    arch: Optional[str] = None
    checkpoint: Optional[str] = Field(
        None,
        description="a state_dict file, relative to the suite file, or pkg:PACKAGE/path inside an installed package",
    )
    robustbench: Optional[str] = Field(None, description="RobustBench model-zoo name, e.g. Carmon2019Unlabeled")
    threat_model: Literal["Linf", "L2", "corruptions"] = "Linf"
    normalize: str = Field("cifar10", description="cifar10, cifar100, none: normalisation inside the model wrapper")
    seed: Seed = 0
    evaluate: Union[Literal["all", "clean"], list[str]] = Field(
        "all",
        description="all; clean: clean data only (saves attack time on big teachers); or a list of the evaluation's "
        "conditions, "
        "e.g. [clean, gaussian_noise], so that fidelity can be measured there too",
    )
    train: Optional[TrainOverride] = None  # type: ignore[valid-type]
    method: Optional[method_spec_type()] = Field(
        None, description="how a recipe teacher is trained (default baseline); a method without a teacher"
    )  # type: ignore[valid-type]

    @field_validator("evaluate")
    @classmethod
    def _known_conditions(cls, v):
        if isinstance(v, list):
            unknown = [c for c in v if c not in CONDITIONS]
            if unknown:
                raise ValueError(
                    f"unknown condition(s) {unknown}; expected names from: "
                    f"{', '.join(n for n, _ in CONDITIONS.items())}"
                )
        return v

    @field_validator("arch")
    @classmethod
    def _arch(cls, v):
        return None if v is None else registered_in(architectures)(v)

    @model_validator(mode="after")
    def _one_source(self):
        if self.robustbench is not None:
            if self.arch or self.checkpoint or self.train:
                raise ValueError("a robustbench teacher takes no arch, checkpoint or train (the zoo defines them)")
        elif self.arch is None:
            raise ValueError("a teacher needs 'arch' (trained from the recipe, or with 'checkpoint'), or 'robustbench'")
        if self.checkpoint is not None and self.train is not None:
            raise ValueError("a checkpoint teacher is not trained: drop 'train'")
        if self.method is not None:
            if self.source != "recipe":
                raise ValueError("only a teacher trained from the recipe takes 'method'")
            if METHODS.get(self.method.name).needs_teacher:
                raise ValueError(
                    f"teacher method '{self.method.name}' learns from a teacher; teachers are trained without one"
                )
        return self

    @property
    def method_spec(self):
        return self.method if self.method is not None else METHODS.get("baseline").Params()

    @property
    def source(self) -> str:
        return "robustbench" if self.robustbench else "checkpoint" if self.checkpoint else "recipe"


class StudentSpec(Strict):
    arch: str
    method: method_spec_type() = Field(description="a method name, or {name: ..., parameters}")  # type: ignore[valid-type]
    teachers: list[str] = Field(default_factory=list)
    ensemble: Optional[EnsembleMode] = Field(
        None, description="required with several teachers: mean_probs or mean_logits"
    )
    seeds: list[Seed] = Field([0], min_length=1)
    normalize: str = "cifar10"
    train: Optional[TrainOverride] = None  # type: ignore[valid-type]

    _arch = field_validator("arch")(registered_in(architectures))

    @field_validator("teachers", mode="before")
    @classmethod
    def _one_teacher(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _teachers_fit_method(self):
        needs = METHODS.get(self.method.name).needs_teacher
        if needs and not self.teachers:
            raise ValueError(f"method '{self.method.name}' learns from a teacher: give 'teachers'")
        if not needs and self.teachers:
            raise ValueError(f"method '{self.method.name}' uses no teacher: drop 'teachers'")
        if METHODS.get(self.method.name).uses_features and len(self.teachers) > 1:
            raise ValueError(
                f"method '{self.method.name}' learns from one teacher's features: give one teacher, not an ensemble"
            )
        if len(self.teachers) > 1 and self.ensemble is None:
            raise ValueError("several teachers need an explicit 'ensemble': mean_probs or mean_logits")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds repeat")
        return self

    @property
    def role(self) -> str:
        return METHODS.get(self.method.name).role
