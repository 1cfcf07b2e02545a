"""The suite schema: the one source of truth for suite files (pydantic v2, unknown keys forbidden).

`load_suite(path, overrides)` reads YAML through bench.safe_yaml (safe_load with bounds on size,
depth, aliases and duplicate keys), applies `--set key.path=value`
overrides, validates, and raises SuiteError listing every problem as
`FILE: key.path: what was expected (found: what was there)`.
"""

from __future__ import annotations

import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, create_model, field_validator, model_validator

from .conditions import CONDITIONS
from .conditions.robust import EXPANDS_TO
from .diagnostics import DiagnosticsParams
from .methods import METHODS, method_spec_type
from .methods.base import EnsembleMode
from .names import NAME
from .registry import UnknownName, did_you_mean
from .safe_yaml import YamlProblem
from .safe_yaml import loads as yaml_loads
from .safe_yaml import read as yaml_read

# Seeds reach numpy and torch generators, which take at most 64 bits; the plan hashes them anyway.
Seed = Annotated[int, Field(ge=0, lt=2**63, description="0 <= seed < 2**63")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _registered(registry_getter):
    """A validator: the name must be in the registry (whose error says what was meant)."""

    def check(value: str) -> str:
        try:
            registry_getter().check(value)
        except UnknownName as exc:
            raise ValueError(str(exc)) from None
        return value

    return check


def _models():
    from .models import MODELS

    return MODELS


def _datasets():
    from .data import DATASETS

    return DATASETS


# ---------------------------------------------------------------------------------------- dataset
class DatasetSpec(Strict):
    name: str = Field("cifar10", description="cifar10, cifar100 or synthetic")
    root: Optional[str] = Field(None, description="overrides --data-root / $KDBENCH_DATA_ROOT / the user cache")
    download: bool = Field(False, description="let torchvision download CIFAR-10 (CIFAR-100) when absent")
    train_subset: Optional[int] = Field(None, ge=1, description="seeded, class-stratified subset of train")
    test_subset: Optional[int] = Field(None, ge=1, description="seeded, class-stratified subset of test")
    subset_seed: Seed = 0
    params: dict[str, Union[int, float, str]] = Field(default_factory=dict, description="dataset parameters (synthetic: n_train, n_test, seed, noise)")

    _name = field_validator("name")(_registered(_datasets))

    @model_validator(mode="after")
    def _dataset_params(self):
        from .data import DataError, check_params

        try:
            check_params(self.name, self.params, self.train_subset, self.test_subset)
        except DataError as exc:
            raise ValueError(str(exc)) from None
        return self


# ---------------------------------------------------------------------------------------- training
# torch.optim.lr_scheduler classes a recipe may name: those that need only numbers (LambdaLR wants a
# function, SequentialLR other schedulers, ReduceLROnPlateau a metric). Stepped once per
# optimisation step or once per epoch, as torch documents for each.
TORCH_SCHEDULERS = {
    "OneCycleLR": "step", "CyclicLR": "step", "StepLR": "epoch", "MultiStepLR": "epoch", "ExponentialLR": "epoch",
    "CosineAnnealingLR": "epoch", "CosineAnnealingWarmRestarts": "epoch", "PolynomialLR": "epoch",
    "LinearLR": "epoch", "ConstantLR": "epoch",
}  # fmt: skip


class TorchSchedule(Strict):
    """A learning-rate scheduler of torch.optim.lr_scheduler by class name, with its arguments, as
    torchdistill takes them: `{name: OneCycleLR, args: {max_lr: 0.1}}`. OneCycleLR and CyclicLR
    step per optimisation step, the others per epoch (`interval` overrides); OneCycleLR's
    `total_steps` defaults to the recipe's length."""

    name: Literal[tuple(TORCH_SCHEDULERS)] = Field(description="a class of torch.optim.lr_scheduler")
    args: dict[str, Any] = Field(default_factory=dict, description="its keyword arguments, except the optimizer")
    interval: Literal["step", "epoch"] | None = Field(None, description="when it steps (default: as torch documents for it)")

    @property
    def every(self) -> str:
        return self.interval or TORCH_SCHEDULERS[self.name]

    def build(self, optimizer, epochs: int, steps_per_epoch: int):
        import torch

        args = dict(self.args)
        if self.name == "OneCycleLR" and not {"total_steps", "epochs", "steps_per_epoch"} & set(args):
            args["total_steps"] = epochs * steps_per_epoch if self.every == "step" else epochs
        return getattr(torch.optim.lr_scheduler, self.name)(optimizer, **args)

    @model_validator(mode="after")
    def _constructs(self):
        import torch

        if "optimizer" in self.args:
            raise ValueError("args: the optimizer is the recipe's; leave 'optimizer' out")
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        try:
            self.build(opt, 10, 10)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"torch.optim.lr_scheduler.{self.name}({', '.join(f'{k}={v!r}' for k, v in self.args.items())}): {exc}") from None
        return self


class TrainRecipe(Strict):
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Annotated[
        Annotated[Literal["constant", "cosine", "multistep"], Tag("named")] | Annotated[TorchSchedule, Tag("torch")],
        Discriminator(lambda v: "named" if isinstance(v, str) else "torch"),  # errors name the one form meant
    ] = Field(
        "cosine", description="constant, cosine or multistep (with warmup_epochs), or a torch scheduler {name, args, interval}")
    milestones: list[float] = Field([0.5, 0.75], description="multistep: fractions of the epochs where lr *= gamma")
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: int = Field(0, ge=0)
    augment: bool = Field(True, description="random crop (padding 4) and horizontal flip")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: the forward pass and losses under bf16 autocast (weights and updates stay fp32)")

    # fields added after results existed: left out of a job's hash at their defaults, so that
    # existing jobs keep their hashes
    LATER_FIELDS: ClassVar[dict] = {"precision": "fp32"}

    def hash_spec(self) -> dict:
        """The recipe as it enters a job's hash."""
        spec = self.model_dump(mode="json")
        return {k: v for k, v in spec.items() if not (k in self.LATER_FIELDS and v == self.LATER_FIELDS[k])}

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, v):
        bad = [m for m in v if not 0 <= m <= 1]
        if bad:
            raise ValueError(f"milestones are fractions of the epochs, in [0, 1] (found: {bad})")
        return v

    @model_validator(mode="after")
    def _warmup_fits(self):
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) is longer than epochs ({self.epochs})")
        if self.warmup_epochs and isinstance(self.schedule, TorchSchedule):
            raise ValueError(f"warmup_epochs is for the named schedules; {self.schedule.name} warms up by itself (OneCycleLR's pct_start, or LinearLR)")
        return self


# Per-model overrides: the same keys with the same limits, all optional; the merged recipe is
# checked again as a whole (suite validation), so cross-field rules hold for overrides too.
TrainOverride = create_model(
    "TrainOverride",
    __base__=Strict,
    **{k: (Optional[Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation], None) for k, f in TrainRecipe.model_fields.items()},
)


def resolve_recipe(base: TrainRecipe, override: Optional[BaseModel]) -> TrainRecipe:
    if override is None:
        return base
    return TrainRecipe.model_validate({**base.model_dump(), **override.model_dump(exclude_none=True)})


# ---------------------------------------------------------------------------------------- models
class TeacherSpec(Strict):
    """A teacher trained from a recipe (arch), loaded from a checkpoint (checkpoint + arch), or
    taken from RobustBench's zoo (robustbench)."""

    arch: Optional[str] = None
    checkpoint: Optional[str] = Field(None, description="a state_dict file, relative to the suite file, or pkg:PACKAGE/path inside an installed package")
    robustbench: Optional[str] = Field(None, description="RobustBench model-zoo name, e.g. Carmon2019Unlabeled")
    threat_model: Literal["Linf", "L2", "corruptions"] = "Linf"
    normalize: str = Field("cifar10", description="cifar10, cifar100, none: normalisation inside the model wrapper")
    seed: Seed = 0
    evaluate: Union[Literal["all", "clean"], list[str]] = Field(
        "all", description="all; clean: clean data only (saves attack time on big teachers); or a list of the evaluation's conditions, "
                           "e.g. [clean, gaussian_noise], so that fidelity can be measured there too")
    train: Optional[TrainOverride] = None  # type: ignore[valid-type]
    method: Optional[method_spec_type()] = Field(None, description="how a recipe teacher is trained (default baseline); a method without a teacher")  # type: ignore[valid-type]

    @field_validator("evaluate")
    @classmethod
    def _known_conditions(cls, v):
        if isinstance(v, list):
            unknown = [c for c in v if c not in CONDITIONS]
            if unknown:
                raise ValueError(f"unknown condition(s) {unknown}; expected names from: {', '.join(n for n, _ in CONDITIONS.items())}")
        return v

    @field_validator("arch")
    @classmethod
    def _arch(cls, v):
        return None if v is None else _registered(_models)(v)

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
                raise ValueError(f"teacher method '{self.method.name}' learns from a teacher; teachers are trained without one")
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
    ensemble: Optional[EnsembleMode] = Field(None, description="required with several teachers: mean_probs or mean_logits")
    seeds: list[Seed] = Field([0], min_length=1)
    normalize: str = "cifar10"
    train: Optional[TrainOverride] = None  # type: ignore[valid-type]

    _arch = field_validator("arch")(_registered(_models))

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
            raise ValueError(f"method '{self.method.name}' learns from one teacher's features: give one teacher, not an ensemble")
        if len(self.teachers) > 1 and self.ensemble is None:
            raise ValueError("several teachers need an explicit 'ensemble': mean_probs or mean_logits")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds repeat")
        return self

    @property
    def role(self) -> str:
        return METHODS.get(self.method.name).role


# ---------------------------------------------------------------------------------------- evaluation
def _evaluate_model():
    """One optional key per registered condition, so a new condition needs no change here."""
    fields: dict[str, Any] = {
        "n": (Optional[int], Field(None, ge=1, description="test examples (seeded, class-stratified); all when absent")),
        "seed": (Seed, 0),
        "batch_size": (int, Field(256, ge=1)),
        "diagnostics": (DiagnosticsParams, Field(default_factory=DiagnosticsParams, description="gradient-masking checks on every attacked model")),
        "saliency": (int, Field(1000, ge=0, description="the first this many evaluated examples keep each model's input gradient of "
                                                       "the true-class logit, for saliency agreement with the teacher; 0: none")),
    }
    for name, cls in CONDITIONS.items():
        default = cls.Params() if name == "clean" else None  # clean always runs: agreement needs it
        fields[name] = (Optional[cls.Params], Field(default, description=(cls.__doc__ or "").strip().split("\n")[0] or None))
    return create_model("EvaluateSpec", __base__=Strict, **fields)


EvaluateSpec = _evaluate_model()


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

    tolerance: Optional[float] = Field(None, ge=0, description="percentage points a metric may fall before it can regress (default 1)")
    tolerances: dict[str, float] = Field(default_factory=dict, description="per group (attack), condition (pgd) or condition:level (pgd:8/255)")
    alpha: Optional[float] = Field(None, gt=0, lt=1, description="significance level after Holm correction (default 0.05)")


class ComparePair(Strict):
    distilled: str
    baseline: str


# ---------------------------------------------------------------------------------------- suite
class Suite(Strict):
    """A benchmark suite: dataset, training recipe, teachers, students in compare pairs, evaluation."""

    name: str = Field(pattern=NAME, description="names the results directory")
    description: str = ""
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    train: TrainRecipe = Field(default_factory=TrainRecipe)
    teachers: dict[Annotated[str, Field(pattern=NAME)], TeacherSpec] = Field(default_factory=dict)
    students: dict[Annotated[str, Field(pattern=NAME)], StudentSpec] = Field(default_factory=dict)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)  # type: ignore[valid-type]
    compare: Optional[list[ComparePair]] = Field(None, description="default: each student against the student of its architecture trained by its method's twin (baseline; pgd_at for robust methods)")
    gate: Optional[GateSpec] = None

    @model_validator(mode="after")
    def _references(self):
        problems = []
        if not self.teachers and not self.students:
            raise ValueError("nothing to run: the suite has no teachers and no students")
        for kind, models in (("teachers", self.teachers), ("students", self.students)):
            for name, spec in models.items():
                if spec.train is not None:
                    try:
                        resolve_recipe(self.train, spec.train)
                    except ValidationError as exc:
                        problems += [f"{kind}.{name}.train: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        both = set(self.teachers) & set(self.students)
        if both:
            problems.append(f"names used for both a teacher and a student: {sorted(both)}")
        for sname, s in self.students.items():
            for t in s.teachers:
                if t not in self.teachers:
                    problems.append(f"students.{sname}.teachers: unknown teacher '{t}'{did_you_mean(t, self.teachers)}")
                elif METHODS.get(s.method.name).uses_features and self.teachers[t].source == "robustbench":
                    problems.append(f"students.{sname}.teachers: '{t}' is a RobustBench zoo model, whose intermediate features "
                                    f"kdbench does not know; method '{s.method.name}' needs a teacher with 'arch'")
        names = [c.name for c in conditions_of(self.evaluate) if c.group == "attack"]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"evaluate: {', '.join(repeated)} asked for twice (the 'robust' preset already runs {', '.join(EXPANDS_TO)}; "
                            "drop it or those keys)")
        transfer = getattr(self.evaluate, "transfer", None)
        if transfer is not None and transfer.source not in ("teacher", "baseline_twin") and transfer.source not in {*self.teachers, *self.students}:
            models = ["teacher", "baseline_twin", *self.teachers, *self.students]
            problems.append(f"evaluate.transfer.source: unknown model '{transfer.source}'{did_you_mean(transfer.source, models)}; "
                            "expected teacher, baseline_twin or a model of the suite")
        elif transfer is not None:
            from .plan import transfer_source

            models = [(n, t.seed) for n, t in self.teachers.items()] + [(n, s) for n, st in self.students.items() for s in st.seeds]
            if not any(transfer_source(self, n, s) for n, s in models):
                problems.append(f"evaluate.transfer: no model of the suite has a '{transfer.source}' to craft on "
                                "(teacher: a student with a teacher or the baseline twin of one; baseline_twin: a compare pair)")
        corruptions = getattr(self.evaluate, "corruptions", None)
        ref = corruptions.reference_model if corruptions is not None else None
        if ref is not None and ref not in self.teachers and ref not in self.students:
            models = [*self.teachers, *self.students]
            problems.append(f"evaluate.corruptions.reference_model: unknown model '{ref}'{did_you_mean(ref, models)}")
        for i, pair in enumerate(self.compare or []):
            for slot in ("distilled", "baseline"):
                n = getattr(pair, slot)
                if n not in self.students:
                    problems.append(f"compare.{i}.{slot}: unknown student '{n}'{did_you_mean(n, self.students)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def recipe_of(self, name: str) -> TrainRecipe:
        spec = self.students.get(name) or self.teachers[name]
        return resolve_recipe(self.train, spec.train)

    def pairs(self) -> list[ComparePair]:
        if self.compare is not None:
            return list(self.compare)
        out = []
        for name, s in self.students.items():
            method = METHODS.get(s.method.name)
            if method.role == "baseline":
                continue
            twins = [b for b, bs in self.students.items() if bs.method.name == method.twin and bs.arch == s.arch]
            if len(twins) == 1:
                out.append(ComparePair(distilled=name, baseline=twins[0]))
        return out

    def partners(self, name: str) -> list[str]:
        """The students `name` is compared with (its compare pairs' other members), in order."""
        return [p.distilled if p.baseline == name else p.baseline for p in self.pairs() if name in (p.baseline, p.distilled)]

    def twin_warnings(self) -> list[str]:
        """Twins must differ only in the loss; say where a suite breaks that."""
        out = []
        for p in self.pairs():
            d, b = self.students[p.distilled], self.students[p.baseline]
            if d.arch != b.arch:
                out.append(f"compare {p.distilled} vs {p.baseline}: architectures differ ({d.arch} vs {b.arch})")
            rd, rb = self.recipe_of(p.distilled), self.recipe_of(p.baseline)
            diff = [k for k in TrainRecipe.model_fields if getattr(rd, k) != getattr(rb, k)]
            if diff:
                out.append(f"compare {p.distilled} vs {p.baseline}: training recipes differ in {', '.join(diff)}; the difference is not the loss alone")
            if set(d.seeds) != set(b.seeds):
                out.append(f"compare {p.distilled} vs {p.baseline}: seeds differ ({d.seeds} vs {b.seeds}); only shared seeds pair up")
            if d.normalize != b.normalize:
                out.append(f"compare {p.distilled} vs {p.baseline}: normalisation differs")
            budgets = [getattr(s.method, "attack", None) for s in (d, b)]
            if all(budgets):
                diff = [k for k in ("eps", "step_size", "steps") if getattr(budgets[0], k) != getattr(budgets[1], k)]
                if diff:
                    out.append(f"compare {p.distilled} vs {p.baseline}: inner attacks differ in {', '.join(diff)}; the twins do not train against the same adversary")
        return out


# ---------------------------------------------------------------------------------------- loading
class SuiteError(ValueError):
    """A suite that does not validate: `.problems` holds one line per problem, `.path` the file."""

    def __init__(self, path, problems: list[str]):
        self.path, self.problems = str(path), problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


def _loc(loc) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 60, 60


def _found(value) -> str:
    """A short quote of a bad value; reprlib never builds the whole repr of a huge or aliased one."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fields_at(model: type[BaseModel], loc) -> Optional[list[str]]:
    """The keys allowed where `loc` points (for 'did you mean' on unknown keys). `loc` is pydantic's,
    so a tagged union's member appears as its tag."""
    tp: Any = model
    for part in loc:
        members = _union_models(tp)
        if members and isinstance(part, str) and part in members:  # the tag picks the member
            tp = members[part]
            continue
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _union_models(tp) -> dict:
    """{tag: model} for a union of models told apart by a `name` literal, else {}."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return {}
    out = {}
    for a in typing.get_args(tp):
        if isinstance(a, type) and issubclass(a, BaseModel) and "name" in a.model_fields:
            out[a.model_fields["name"].default] = a
    return out


def _unwrap(tp):
    """Strip Annotated and Optional down to the one type inside (the first, for real unions)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(models) == 1:
                tp = models[0]
            elif len(args) == 1:
                tp = args[0]
            else:
                return tp
        else:
            return tp


def _describe(err: dict) -> str:
    raw_loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    loc: list = []
    for part in err["loc"]:
        # pydantic puts a union member's tag in the location; users never wrote it
        if isinstance(part, str) and (part.startswith("function-") or (loc and loc[-1] == "method" and part in METHODS)):
            continue
        loc.append(part)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(Suite, raw_loc[:-1]) or []
        key = loc[-1]
        return f"{_loc(loc)}: unknown key '{key}'{did_you_mean(key, allowed)}; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return f"{_loc(loc)}: required key is missing"
    if kind == "union_tag_invalid":
        tag, expected = err["ctx"]["tag"], err["ctx"]["expected_tags"]
        names = [t.strip(" '") for t in expected.split(",")]
        return f"{_loc(loc)}: unknown method '{tag}'{did_you_mean(tag, names)}; expected one of: {', '.join(names)}"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "value_error" and "found" not in msg and "input" in err and not isinstance(err["input"], dict):
        msg += f" (found: {_found(err['input'])})"
    elif kind != "value_error" and "input" in err:
        msg = re.sub(r"^Input should (be|have)", lambda m: "expected" if m.group(1) == "be" else "expected to have", msg)
        msg = f"{msg} (found: {_found(err['input'])})"
    return f"{_loc(loc)}: {msg}"


def parse_overrides(pairs: list[str]) -> list[tuple[list[str], Any]]:
    out = []
    for item in pairs or []:
        if "=" not in item:
            raise SuiteError("--set", [f"'{item}': expected key.path=value"])
        key, value = item.split("=", 1)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise SuiteError("--set", [f"'{key}': expected a dotted key path such as train.epochs"])
        try:
            out.append((key.split("."), yaml_loads(value, max_bytes=64 * 1024) if value else None))
        except YamlProblem as exc:
            raise SuiteError("--set", [f"{key}: the value {_found(value)} is {exc}" if "YAML" in str(exc) else f"{key}: the value is {exc}"]) from None
    return out


def apply_overrides(raw: dict, overrides) -> dict:
    for path, value in overrides:
        node = raw
        for part in path[:-1]:
            if isinstance(node, list) and part.isdigit():
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
        if isinstance(node, list) and path[-1].isdigit():
            node[int(path[-1])] = value
        else:
            node[path[-1]] = value
    return raw


def read_yaml(path: Path) -> dict:
    try:
        raw = yaml_read(path)
    except OSError as exc:
        raise SuiteError(path, [f"cannot read the file ({exc.strerror or exc})"]) from None
    except YamlProblem as exc:
        raise SuiteError(path, [str(exc)]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SuiteError(path, [f"(top level): expected a mapping of sections (found: {type(raw).__name__})"])
    return raw


def _name_from(path: Path) -> str:
    """A suite without `name:` is named after its file; characters a directory name should not
    have become '-'."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "suite"
    return name if re.match(NAME, name) else f"suite-{name}"


def check_checkpoint(spec: str) -> str | None:
    """Why a checkpoint path cannot be read, or None: it must resolve (a pkg: path inside its
    installed package) to an existing file."""
    from .teachers import TeacherError, resolve_checkpoint

    try:
        path = resolve_checkpoint(spec)
    except TeacherError as exc:
        return str(exc).removeprefix("checkpoint ")
    if path.is_dir():
        return f"'{spec}': is a directory, expected a weights file"
    if not path.is_file():
        return f"'{spec}': no such file"
    return None


def load_suite(path, overrides: list[str] | None = None) -> Suite:
    path = Path(path)
    raw = read_yaml(path)
    raw.setdefault("name", _name_from(path))
    try:
        raw = apply_overrides(raw, parse_overrides(overrides or []))
    except (AttributeError, IndexError, TypeError):
        raise SuiteError(path, [f"--set {overrides}: a key path does not lead into a mapping"]) from None
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError(path, [_describe(e) for e in exc.errors()]) from None
    base = path.parent
    problems = []
    for name, t in suite.teachers.items():  # checkpoint paths are relative to the suite file
        if t.checkpoint and not t.checkpoint.startswith("pkg:") and not Path(t.checkpoint).expanduser().is_absolute():
            candidate = (base / t.checkpoint)
            if candidate.exists() or not Path(t.checkpoint).exists():
                t.checkpoint = str(candidate)
        why = check_checkpoint(t.checkpoint) if t.checkpoint else None
        if why:
            problems.append(f"teachers.{name}.checkpoint: {why}")
    if problems:
        raise SuiteError(path, problems)
    return suite


def json_schema() -> dict:
    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kdbench suite"
    return schema
