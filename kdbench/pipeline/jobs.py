"""What each kind of job does: train a teacher, train a student, evaluate models.

The executor knows jobs, not methods; these functions know methods, models and data, and read
their inputs only from the outputs of the jobs they depend on.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from kdbench.config import TrainRecipe
from kdbench.data import DataError
from kdbench.evaluation.diagnostics import diagnose
from kdbench.evaluation.evaluate import evaluate
from kdbench.evaluation.model_eval import save_eval
from kdbench.executors.base import JobFunctions
from kdbench.executors.store import Store
from kdbench.models import MODELS
from kdbench.models.compiled import compiled
from kdbench.models.teachers import (
    build_architecture,
    load_checkpoint,
    load_checkpoint_teacher,
    load_robustbench_teacher,
)
from kdbench.pipeline.hooks import Logs
from kdbench.pipeline.plan import Job, Plan
from kdbench.training.batches import predict_logits
from kdbench.training.loop import train
from kdbench.training.methods import build_method
from kdbench.util.atomic import atomic_path
from kdbench.util.contracts import check_logits
from kdbench.util.hashing import content_hash, weights_sha256
from kdbench.util.seeding import derive_seed

WEIGHTS = "model.pt"  # the bare architecture's state_dict: loads into the plain network


class JobRunner:
    def __init__(self, plan: Plan, splits, test_eval, conditions, store: Store, device, log=print):
        self.plan, self.suite = plan, plan.suite
        self.splits, self.test_eval, self.conditions = splits, test_eval, conditions
        self.store, self.device, self.log = store, device, log
        self.hooks = ()  # pipeline.hooks.RunHook: each model trained here logs its epochs as they happen
        for c in conditions:
            c.dataset = self.suite.dataset.name  # released corrupted files (CIFAR-10-C, CIFAR-100-C) follow the dataset
            if hasattr(c, "clean"):  # released -C folders are matched to the test split's files
                c.clean = (splits.test, splits.classes)
        self._models: dict[str, nn.Module] = {}

    @property
    def num_classes(self) -> int:
        # the dataset's, as its identity (in every job's hash) fixes it
        return self.splits.num_classes

    def functions(self) -> JobFunctions:
        by_kind = {"teacher": self.run_teacher, "student": self.run_student, "evaluate": self.run_evaluate}
        return JobFunctions(by_kind, str(self.device))

    # ------------------------------------------------------------------ loading models
    def load_model(self, job: Job, keep: bool = True) -> nn.Module:
        """The model a teacher or student job made (or names), wrapped, in eval mode; kept for the
        next call unless `keep` is False (a driver hashing thousands of models must not hold them all)."""
        if job.hash in self._models:
            return self._models[job.hash]
        spec = job.spec
        if job.kind == "teacher" and spec["source"] == "checkpoint":
            model = load_checkpoint_teacher(self.suite.teachers[job.model], self.num_classes)
        elif job.kind == "student" and spec.get("source") == "checkpoint":
            student = self.suite.students[job.model]
            model = load_checkpoint(
                student.checkpoints[job.seed], spec["arch"], spec["normalize"], self.num_classes, **build_args(spec)
            )
        elif job.kind == "teacher" and spec["source"] == "robustbench":
            model = load_robustbench_teacher(
                self.suite.teachers[job.model], self.store.root / "robustbench", self.suite.dataset.name
            )
        else:
            model = build_architecture(spec["arch"], spec["normalize"], self.num_classes, **build_args(spec))
            state = torch.load(self.store.path(job) / WEIGHTS, map_location="cpu", weights_only=True)
            model.net.load_state_dict(state)
        model = model.to(self.device).eval()
        if keep:
            self._models[job.hash] = model
        return model

    def role_of(self, model: str) -> str:
        return "teacher" if model in self.suite.teachers else self.suite.students[model].role

    def described(self, job: Job) -> dict:
        """The job's specification with its method resolved (a teacher's default is not in its hash)."""
        if job.kind == "teacher" and job.spec["source"] == "recipe" and "method" not in job.spec:
            return {**job.spec, "method": self.suite.teachers[job.model].method_spec.model_dump(mode="json")}
        return job.spec

    def release_models(self) -> None:
        """Drop the models kept so far (a Ray worker, between tasks): they reload from the store."""
        self._models.clear()

    # ------------------------------------------------------------------ training
    def _fit(self, job: Job, out: Path, method, teachers=(), teacher_logits=None) -> None:
        if len(self.splits.train) == 0:  # ImageNet without train/: its models can only be loaded
            raise DataError(
                f"{job.id}: dataset {self.suite.dataset.name} has no training images here, so this model cannot "
                "be trained; give it a checkpoint (teachers: checkpoint:, students: checkpoints:) or add train/"
            )
        spec = job.spec
        recipe = TrainRecipe.model_validate(spec["recipe"])
        # Twins share initial weights: the init seed depends on architecture and seed, not on the method.
        torch.manual_seed(derive_seed("init", spec["arch"], spec["seed"]))
        model = build_architecture(spec["arch"], spec["normalize"], self.num_classes, **build_args(spec))
        self._check_outputs(model, job)
        history = []
        logs = Logs(self.hooks, job, self, self.log)
        try:
            train(
                model,
                self.splits.train.images,
                self.splits.train.labels,
                recipe,
                method,
                spec["seed"],
                teachers=teachers,
                teacher_logits=teacher_logits,
                device=self.device,
                desc=job.id,
                log=lambda row: (
                    history.append(row),
                    self.log(f"  {job.id} " + " ".join(f"{k}={v:.4g}" for k, v in row.items())),
                    logs.epoch(row),
                ),
                say=self.log,
            )
        except BaseException:
            logs.close(ok=False)
            raise
        logs.close()
        torch.save(model.net.state_dict(), out / WEIGHTS)
        (out / "history.json").write_text(json.dumps(history, indent=1))
        # its students train next; a student is reloaded when evaluated (a plan may train thousands)
        if job.kind == "teacher":
            self._models[job.hash] = model.eval()

    def _check_outputs(self, model: nn.Module, job: Job) -> None:
        """The network's logits on two training images (eval mode, no gradient: no state or random
        draw changes) have the data's classes, before anything trains on them."""
        arch = job.spec["arch"]
        x = self.splits.train.images[:2].float().div(255)
        model.eval()
        with torch.no_grad():
            z = model(x)
        code = MODELS.get(arch) if arch in MODELS else model.net
        check_logits(z, len(x), self.num_classes, f"{job.id}: architecture '{arch}'", code)

    def run_teacher(self, jobs: Sequence[Job], outs: Sequence[Path]) -> None:
        job, out = jobs[0], outs[0]
        if job.spec["source"] == "recipe":
            self._fit(job, out, build_method(self.suite.teachers[job.model].method_spec))
        else:  # nothing to train: check that it loads, so a bad checkpoint fails here, named
            self.load_model(job)
        # the outputs its students will read, made once here: they then start with them, and students
        # run side by side (--jobs N, Ray) do not each compute them
        wanted = [
            s.spec["data"]
            for s in self.plan.jobs
            if [d.hash for d in s.deps] == [job.hash] and not self.store.done(s) and self._reads_cached_logits(s)
        ]
        for data in {content_hash(d): d for d in wanted}.values():
            self._teacher_logits([job], data)

    def run_student(self, jobs: Sequence[Job], outs: Sequence[Path]) -> None:
        job, out = jobs[0], outs[0]
        if (
            job.spec.get("source") == "checkpoint"
        ):  # trained elsewhere: check that it loads, so a bad file fails here, named
            self.load_model(job, keep=False)
            return
        student = self.suite.students[job.model]
        method = build_method(student.method, ensemble=student.ensemble or "mean_probs")
        teachers = [self.load_model(d) for d in job.deps]
        cached = self._teacher_logits(job.deps, job.spec["data"]) if self._reads_cached_logits(job) else None
        self._fit(job, out, method, teachers=teachers, teacher_logits=cached)

    def _reads_cached_logits(self, job: Job) -> bool:
        """Whether a student job trains on its teachers' cached outputs (un-augmented logit methods)."""
        if job.kind != "student" or job.spec.get("source") == "checkpoint":
            return False
        method = build_method(self.suite.students[job.model].method)
        recipe = TrainRecipe.model_validate(job.spec["recipe"])
        return method.needs_teacher and not method.uses_features and not recipe.augment

    def _teacher_logits(self, teacher_jobs: Sequence[Job], data: dict) -> torch.Tensor:
        """Teacher outputs on the un-augmented training set, cached by content; made by one process
        at a time (a lock beside the file), so jobs running at once wait for it rather than repeat it."""
        path = teacher_logits_path(self.store.root, teacher_jobs, data)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.with_suffix(".lock")):
            if path.is_file():
                return torch.load(path, map_location="cpu", weights_only=True)
            logits = predict_logits(
                [self.load_model(t) for t in teacher_jobs], self.splits.train.images, 512, self.device
            ).cpu()
            with atomic_path(path) as tmp:
                torch.save(logits, tmp)
        return logits

    # ------------------------------------------------------------------ evaluation
    def run_evaluate(self, jobs: Sequence[Job], outs: Sequence[Path]) -> list[dict]:
        # each model loaded once, and held for this group only (a plan is scored a group at a time)
        held: dict[str, nn.Module] = {}

        t = self.test_eval
        ev = self.suite.evaluate

        evaluated = {j.deps[0].hash for j in jobs}  # not the transfer sources and attack references
        shas: dict[str, str] = {}  # what each job.json records: the weights evaluated

        def model(job: Job) -> nn.Module:
            if job.hash not in held:
                m = self.load_model(job, keep=False)
                if job.hash in evaluated:
                    shas[job.hash] = weights_sha256(m)
                # a copy: a model this process keeps (a teacher whose cached logits it makes) stays as it was
                held[job.hash] = copy.deepcopy(m).to(memory_format=torch.channels_last) if ev.channels_last else m
            return held[job.hash]

        models = {j.hash: compiled(model(j.deps[0]), ev.compile, self.device, j.id, self.log) for j in jobs}
        only = {j.hash: set(j.spec["only"]) for j in jobs if "only" in j.spec}
        sources = {j.hash: {"transfer": model(j.deps[1])} for j in jobs if "transfer_source" in j.spec}
        # fidelity under attack: the reference teachers are the job's last dependencies
        references = {
            j.hash: [model(d) for d in j.deps[-len(j.spec["attack_reference"]) :]]
            for j in jobs
            if j.spec.get("attack_reference")
        }
        results = evaluate(
            models,
            self.conditions,
            t.images,
            t.labels,
            t.indices,
            batch_size=ev.batch_size,
            device=self.device,
            only=only,
            sources=sources,
            names={j.hash: f"{j.model}:seed{j.seed}" for j in jobs},
            saliency=min(ev.saliency, len(t.images)),
            references=references,
            log=self.log,
        )
        n = min(ev.diagnostics.subset, len(t.images))
        x_sub, y_sub = t.images[:n].to(self.device).float().div_(255), t.labels[:n].to(self.device)
        for j, out in zip(jobs, outs):
            r = results[j.hash]
            start = time.perf_counter()
            checks = diagnose(
                models[j.hash], x_sub, y_sub, r, self.conditions, ev.diagnostics, derive_seed(ev.seed, "diagnostics")
            )
            seconds = dict(
                r.attack_seconds, **({"diagnostics": round(time.perf_counter() - start, 3)} if checks else {})
            )
            save_eval(out, r, t.indices, checks, seconds)
        return [{"weights_sha256": shas[j.deps[0].hash]} for j in jobs]


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (created if absent) for this block; none where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: at worst two processes compute the same thing
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def teacher_logits_path(store_root: Path, teacher_jobs: Sequence[Job], data: dict) -> Path:
    """Where the teachers' outputs on the un-augmented training set are cached, by content."""
    return Path(store_root) / "teacher_logits" / f"{content_hash([[t.hash for t in teacher_jobs], data])}.pt"


def build_args(spec: dict) -> dict:
    """The model-building arguments a job's spec records (arch_args, feature_stages), if any."""
    return {k: spec[k] for k in ("arch_args", "feature_stages") if k in spec}
