"""The suite: dataset, recipe, teachers, students in compare pairs, evaluation; the checks that
span sections, and the pairs and partners every later stage reads."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

from pydantic import Field, ValidationError, model_validator

from kdbench.config.dataset import DatasetSpec
from kdbench.config.evaluate import EvaluateSpec, GateSpec, conditions_of
from kdbench.config.fields import Strict
from kdbench.config.models import StudentSpec, TeacherSpec
from kdbench.config.recipe import TorchSchedule, TrainRecipe, resolve_recipe
from kdbench.evaluation.conditions.robust import EXPANDS_TO
from kdbench.registry import did_you_mean
from kdbench.training.methods import METHODS, twin_pairs
from kdbench.util.names import MAX_NAME, NAME, OUT_RESERVED

Name = Annotated[str, Field(pattern=NAME, max_length=MAX_NAME)]


class ComparePair(Strict):
    distilled: str
    baseline: str


# ---------------------------------------------------------------------------------------- suite
class Suite(Strict):
    """A benchmark suite: dataset, training recipe, teachers, students in compare pairs, evaluation."""

    name: str = Field(pattern=NAME, max_length=MAX_NAME, description="names the results directory")
    description: str = ""
    plugins: list[str] = Field(
        default_factory=list,
        description="Python files (relative to the suite file) or importable modules that register architectures, "
        "methods, conditions, datasets or metrics; imported before the suite is validated",
    )
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    train: TrainRecipe = Field(default_factory=TrainRecipe)
    teachers: dict[Name, TeacherSpec] = Field(default_factory=dict)
    students: dict[Name, StudentSpec] = Field(default_factory=dict)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)  # type: ignore[valid-type]
    compare: Optional[list[ComparePair]] = Field(
        None,
        description="default: each student against the student of its architecture trained by its method's twin "
        "(baseline; pgd_at for robust methods)",
    )
    gate: Optional[GateSpec] = None
    reproducible: Literal["machine", "portable"] = Field(
        "machine",
        description="machine: the same numbers on the same machine and thread count; portable: the same bytes "
        "from every CPU job on any x86-64 CPU (ATen's baseline kernels, no oneDNN, MKL's compatible path, one "
        "thread per job; slower)",
    )

    @model_validator(mode="after")
    def _references(self):
        if self.name.lower() in OUT_RESERVED:
            raise ValueError(
                f"name: '{self.name}' is a file kdbench writes beside the suites' folders in --out; "
                f"choose another (reserved: {', '.join(OUT_RESERVED)})"
            )
        problems = []
        if not self.teachers and not self.students:
            raise ValueError("nothing to run: the suite has no teachers and no students")
        for kind, models in (("teachers", self.teachers), ("students", self.students)):
            for name, spec in models.items():
                if spec.train is not None:
                    try:
                        resolve_recipe(self.train, spec.train)
                    except ValidationError as exc:
                        problems += [
                            f"{kind}.{name}.train: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
                        ]
        both = set(self.teachers) & set(self.students)
        if both:
            problems.append(f"names used for both a teacher and a student: {sorted(both)}")
        for sname, s in self.students.items():
            for t in s.teachers:
                if t not in self.teachers:
                    problems.append(f"students.{sname}.teachers: unknown teacher '{t}'{did_you_mean(t, self.teachers)}")
                elif METHODS.get(s.method.name).uses_features and self.teachers[t].source == "robustbench":
                    problems.append(
                        f"students.{sname}.teachers: '{t}' is a RobustBench zoo model, whose intermediate features "
                        f"kdbench does not know; method '{s.method.name}' needs a teacher with 'arch'"
                    )
        names = [c.name for c in conditions_of(self.evaluate) if c.group == "attack"]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(
                f"evaluate: {', '.join(repeated)} asked for twice (the 'robust' preset already runs "
                f"{', '.join(EXPANDS_TO)}; "
                "drop it or those keys)"
            )
        transfer = getattr(self.evaluate, "transfer", None)
        if (
            transfer is not None
            and transfer.source not in ("teacher", "baseline_twin")
            and transfer.source not in {*self.teachers, *self.students}
        ):
            models = ["teacher", "baseline_twin", *self.teachers, *self.students]
            problems.append(
                f"evaluate.transfer.source: unknown model '{transfer.source}'{did_you_mean(transfer.source, models)}; "
                "expected teacher, baseline_twin or a model of the suite"
            )
        elif transfer is not None:
            models = [(n, t.seed) for n, t in self.teachers.items()] + [
                (n, s) for n, st in self.students.items() for s in st.seeds
            ]
            if not any(transfer_source(self, n, s) for n, s in models):
                problems.append(
                    f"evaluate.transfer: no model of the suite has a '{transfer.source}' to craft on "
                    "(teacher: a student with a teacher or the baseline twin of one; baseline_twin: a compare pair)"
                )
        corruptions = getattr(self.evaluate, "corruptions", None)
        ref = corruptions.reference_model if corruptions is not None else None
        if ref is not None and ref not in self.teachers and ref not in self.students:
            models = [*self.teachers, *self.students]
            problems.append(f"evaluate.corruptions.reference_model: unknown model '{ref}'{did_you_mean(ref, models)}")
        from kdbench.data import image_size, num_classes, train_size

        n_train = train_size(self.dataset.name, self.dataset.params, self.dataset.train_subset)
        classes = num_classes(self.dataset.name, self.dataset.params)
        size = image_size(self.dataset.name, self.dataset.params)
        if corruptions is not None and corruptions.source == "generate" and size is not None:
            from kdbench.evaluation.conditions.corruptions import resolve_names, side_problems

            for problem in side_problems(resolve_names(corruptions.names), size):
                problems.append(f"evaluate.corruptions: {problem} ({self.dataset.name}'s images)")
        targeted = getattr(self.evaluate, "apgd_t", None)
        asked = targeted is not None and "target_classes" in targeted.model_fields_set  # the default adapts
        if classes is not None and asked and targeted.target_classes > classes - 1:
            problems.append(
                f"evaluate.apgd_t.target_classes: {targeted.target_classes} target classes, but "
                f"{self.dataset.name} has {classes} classes, so at most {classes - 1} others to target"
            )
        for kind, models in (("teachers", self.teachers), ("students", self.students)):
            for name, spec in models.items():
                trained = not getattr(spec, "loaded", False) and getattr(spec, "source", "recipe") == "recipe"
                problem = _schedule_too_short(spec, self.train, n_train) if trained else None
                if problem:
                    problems.append(f"{kind}.{name}: {problem}")
        for name, s in self.students.items():
            if not s.loaded:
                batch = (s.train.batch_size if s.train is not None else None) or self.train.batch_size
                for problem in METHODS.get(s.method.name).budget_problems(s.method, n_train, batch):
                    problems.append(f"students.{name}.method: {problem}")
        seen_pairs: dict[frozenset, int] = {}
        for i, pair in enumerate(self.compare or []):
            for slot in ("distilled", "baseline"):
                n = getattr(pair, slot)
                if n not in self.students:
                    problems.append(f"compare.{i}.{slot}: unknown student '{n}'{did_you_mean(n, self.students)}")
            key = frozenset((pair.distilled, pair.baseline))
            if pair.distilled == pair.baseline:
                problems.append(
                    f"compare.{i}: '{pair.distilled}' compared with itself; a pair is two different students"
                )
            elif key in seen_pairs:
                problems.append(f"compare.{i}: the same two students as compare.{seen_pairs[key]}; list a pair once")
            seen_pairs.setdefault(key, i)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def recipe_of(self, name: str) -> TrainRecipe:
        spec = self.students.get(name) or self.teachers[name]
        return resolve_recipe(self.train, spec.train)

    def pairs(self) -> list[ComparePair]:
        if self.compare is not None:
            return list(self.compare)
        students = [(name, s.arch, s.method.name, s.role) for name, s in self.students.items()]
        return [ComparePair(distilled=d, baseline=b) for d, b in twin_pairs(students)]

    def partners(self, name: str) -> list[str]:
        """The students `name` is compared with (its compare pairs' other members), in order."""
        return [
            p.distilled if p.baseline == name else p.baseline for p in self.pairs() if name in (p.baseline, p.distilled)
        ]

    def twin_warnings(self) -> list[str]:
        """Twins must differ only in the loss; say where a suite breaks that."""
        out = []
        for p in self.pairs():
            d, b = self.students[p.distilled], self.students[p.baseline]
            if d.arch != b.arch:
                out.append(f"compare {p.distilled} vs {p.baseline}: architectures differ ({d.arch} vs {b.arch})")
            rd, rb = self.recipe_of(p.distilled), self.recipe_of(p.baseline)
            trained_here = not d.loaded and not b.loaded  # a loaded student's recipe is its team's, unknown here
            diff = [k for k in TrainRecipe.model_fields if getattr(rd, k) != getattr(rb, k)] if trained_here else []
            if diff:
                out.append(
                    f"compare {p.distilled} vs {p.baseline}: training recipes differ in {', '.join(diff)}; the "
                    "difference is not the loss alone"
                )
            if set(d.seeds) != set(b.seeds):
                out.append(
                    f"compare {p.distilled} vs {p.baseline}: seeds differ ({d.seeds} vs {b.seeds}); only shared seeds "
                    "pair up"
                )
            if d.normalize != b.normalize:
                out.append(f"compare {p.distilled} vs {p.baseline}: normalisation differs")
            budgets = [getattr(s.method, "attack", None) for s in (d, b)]
            if all(budgets):
                diff = [k for k in ("eps", "step_size", "steps") if getattr(budgets[0], k) != getattr(budgets[1], k)]
                if diff:
                    out.append(
                        f"compare {p.distilled} vs {p.baseline}: inner attacks differ in {', '.join(diff)}; the twins "
                        "do not train against the same adversary"
                    )
        return out


def transfer_source(suite: Suite, name: str, seed: int) -> tuple[str, int] | None:
    """The (model, seed) a transfer attack on `name` crafts on, or None when it has none.

    teacher: a student's first teacher; a baseline borrows the teacher of the distilled student it
    is compared with, so that both twins face the same attack. baseline_twin: the other member of
    the model's compare pair, same seed. A model name: that model, at the same seed if it has it.
    Teachers, and a model asked to attack itself, get none."""
    spec = getattr(suite.evaluate, "transfer", None)
    if spec is None or name in suite.teachers:
        return None
    partners = suite.partners(name)
    if spec.source == "teacher":
        own = suite.students[name].teachers
        borrowed = [t for p in partners for t in suite.students[p].teachers]
        found = (own or borrowed)[:1]
        return (found[0], suite.teachers[found[0]].seed) if found else None
    if spec.source == "baseline_twin":
        twin = partners[0] if partners else None
        return (twin, seed) if twin is not None and seed in suite.students[twin].seeds else None
    if spec.source == name:
        return None
    if spec.source in suite.teachers:
        return spec.source, suite.teachers[spec.source].seed
    seeds = suite.students[spec.source].seeds
    return spec.source, seed if seed in seeds else seeds[0]


def _schedule_too_short(spec, base: TrainRecipe, n_train: int | None) -> str | None:
    """OneCycleLR with its own length (total_steps, or epochs x steps_per_epoch) must last the
    whole training, or torch stops the run when it steps past the end."""
    try:
        recipe = resolve_recipe(base, spec.train)
    except ValidationError:
        return None  # said elsewhere
    s = recipe.schedule
    if not isinstance(s, TorchSchedule) or s.name != "OneCycleLR" or n_train is None:
        return None
    given = s.args.get("total_steps")
    if given is None and {"epochs", "steps_per_epoch"} <= set(s.args):
        given = s.args["epochs"] * s.args["steps_per_epoch"]
    steps = recipe.epochs * (math.ceil(n_train / recipe.batch_size) if s.every == "step" else 1)
    if given is not None and given < steps:
        return (
            f"OneCycleLR lasts {given} steps, but training takes {steps} ({recipe.epochs} epochs of {n_train} images)"
        )
    return None
