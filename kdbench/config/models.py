"""The suite's `teachers:` and `students:` entries."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from kdbench.config.fields import Seed, Strict, architectures, registered_in
from kdbench.config.recipe import TrainOverride
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.models import MODELS
from kdbench.models.external import check_external, is_external
from kdbench.models.soft_targets import EnsembleMode
from kdbench.registry import did_you_mean
from kdbench.training.methods import METHODS, method_spec_type


class Architecture(Strict):
    """What builds a model: a registered architecture or `torchvision:NAME` / `timm:NAME`, the
    arguments of its factory, and, for feature-based methods, the stages to read."""

    arch_args: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the architecture's factory (num_classes is the dataset's)",
    )
    feature_stages: Optional[list[str]] = Field(
        None,
        description="the modules whose outputs feature-based methods read, shallow to deep; default: the family's, "
        "or the last layer at each resolution",
    )

    @field_validator("arch", check_fields=False)
    @classmethod
    def _known_arch(cls, v):
        if v is None or is_external(v):
            return v  # checked with its arguments, below
        return registered_in(architectures)(v)

    @model_validator(mode="after")
    def _args(self):
        arch = getattr(self, "arch", None)
        if arch is not None and is_external(arch):
            check_external(arch, self.arch_args)
        elif arch is not None and self.arch_args:
            check_factory_args(arch, self.arch_args)
        return self

    @property
    def build_args(self) -> dict:
        """What the model is built with besides its name: part of its jobs' hashes when given."""
        out = {}
        if self.arch_args:
            out["arch_args"] = self.arch_args
        if self.feature_stages:
            out["feature_stages"] = list(self.feature_stages)
        return out


_SIMPLE = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}


def check_factory_args(arch: str, args: dict) -> None:
    """`arch_args` against the registered factory's signature (importing it): every argument one it
    takes, of the simple type it annotates; so a misspelt argument fails at validate, not when the
    network is built."""
    factory = MODELS.get(arch)
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a callable without a signature: what it takes shows when it is built
    params = sig.parameters
    takes = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "num_classes"]
    if "num_classes" in args:
        raise ValueError("arch_args: num_classes is the dataset's, not an argument to give")
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in args if k not in params]
        if unknown:
            raise ValueError(
                f"arch_args: {arch} takes no argument {', '.join(repr(k) for k in unknown)}"
                f"{did_you_mean(unknown[0], takes)}; it takes: {', '.join(takes) or 'none'}"
            )
    hints = _hints(factory)
    for key, value in args.items():
        kinds = _SIMPLE.get(hints.get(key))
        if kinds is not None and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            raise ValueError(f"arch_args.{key}: {arch} expects {hints[key].__name__}, got {value!r}")


def _hints(factory) -> dict:
    try:
        return typing.get_type_hints(getattr(factory, "func", factory))
    except Exception:  # noqa: BLE001 - unresolvable annotations: the types go unchecked
        return {}


class TeacherSpec(Architecture):
    """A teacher trained from a recipe (arch), loaded from a checkpoint (checkpoint + arch), or
    taken from RobustBench's zoo (robustbench)."""

    arch: Optional[str] = None
    checkpoint: Optional[str] = Field(
        None,
        description="a state_dict file, relative to the suite file, or pkg:PACKAGE/path inside an installed package",
    )
    robustbench: Optional[str] = Field(None, description="RobustBench model-zoo name, e.g. Carmon2019Unlabeled")
    threat_model: Literal["Linf", "L2", "corruptions"] = "Linf"
    normalize: str = Field(
        "cifar10", description="cifar10, cifar100, imagenet, none: normalisation inside the model wrapper"
    )
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


class StudentSpec(Architecture):
    """A student trained by the suite (arch, method, teachers, seeds), or already trained elsewhere
    and loaded (`checkpoints`, one state_dict per seed, for its arch): loaded students are scored,
    paired, reported and gated as trained ones; their `method` says how they were trained (their
    role and label) and their `teachers`, if named, are only the references of the fidelity metrics."""

    arch: str
    method: method_spec_type() = Field(description="a method name, or {name: ..., parameters}")  # type: ignore[valid-type]
    checkpoints: Optional[dict[Seed, str]] = Field(
        None,
        description="already-trained weights instead of training: {seed: state_dict file}, relative to the suite file",
    )
    teachers: list[str] = Field(default_factory=list)
    ensemble: Optional[EnsembleMode] = Field(
        None, description="required with several teachers: mean_probs or mean_logits"
    )
    seeds: list[Seed] = Field([0], min_length=1)
    normalize: str = "cifar10"
    train: Optional[TrainOverride] = None  # type: ignore[valid-type]

    @field_validator("teachers", mode="before")
    @classmethod
    def _one_teacher(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _seeds_once(cls, v):
        if isinstance(v, dict):
            seen = {}
            for key in v:
                try:
                    seed = int(key)
                except (TypeError, ValueError):
                    continue  # pydantic says what is wrong with it
                if seed in seen:
                    raise ValueError(f"seed {seed} is listed twice ({seen[seed]!r} and {key!r})")
                seen[seed] = key
        return v

    @model_validator(mode="before")
    @classmethod
    def _seeds_of_checkpoints(cls, data):
        """A loaded student's seeds are its checkpoints' keys."""
        if isinstance(data, dict) and isinstance(data.get("checkpoints"), dict) and data["checkpoints"]:
            keys = list(data["checkpoints"])
            if "seeds" in data and [str(s) for s in data["seeds"]] != [str(k) for k in keys]:
                raise ValueError("a loaded student's seeds are its checkpoints' keys: drop 'seeds'")
            if data.get("train") is not None:
                raise ValueError("a loaded student is not trained: drop 'train'")
            data = {**data, "seeds": keys}
        return data

    @property
    def loaded(self) -> bool:
        return bool(self.checkpoints)

    @model_validator(mode="after")
    def _teachers_fit_method(self):
        needs = METHODS.get(self.method.name).needs_teacher
        if len(set(self.teachers)) != len(self.teachers):
            raise ValueError(
                f"teachers: {self.teachers} lists a teacher twice; an ensemble averages different teachers"
            )
        if self.checkpoints is not None and not self.checkpoints:
            raise ValueError("checkpoints: give at least one {seed: file}")
        if self.loaded:  # teachers, if any, are the fidelity metrics' references only
            if len(self.teachers) > 1 and self.ensemble is None:
                raise ValueError("several teachers need an explicit 'ensemble': mean_probs or mean_logits")
            return self
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
