"""A rough time estimate for the jobs a run has still to do, for `kdbench run --dry-run`.

Work is counted in network passes: training steps (forward, backward and update at the recipe's
batch size; KD adds one teacher forward per training image when its outputs are cached, else per
step; adversarial training adds its inner attack's gradient passes per step), and per evaluated
batch the forwards and gradient passes each condition declares (`Condition.passes`), plus the
gradient-masking probes. One batch per architecture is timed on this device to price a pass. It
leaves out data loading, corruption generation and start-up, and counts AutoAttack and Square at
their full budgets (both stop on fooled examples), so read it as "minutes or hours", not as a
promise."""

from __future__ import annotations

import math
import time

from kdbench.config import TrainRecipe, conditions_of
from kdbench.executors.base import job_groups
from kdbench.pipeline.plan import Plan
from kdbench.training.methods import METHODS
from kdbench.util.lazy import lazy

torch = lazy("torch")


def _timed(fn, repeats: int = 2) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


class Prices:
    """Seconds per pass for each (architecture, normalisation, batch size), timed once on `device`."""

    def __init__(self, device, num_classes: int = 10):
        self.device, self.num_classes = device, num_classes
        self._cache: dict = {}

    def _model(self, arch: str, normalize: str, spec):
        from kdbench.models.teachers import build_architecture

        return build_architecture(arch, normalize, self.num_classes, **spec.build_args).to(self.device)

    def of(self, arch: str, normalize: str, spec, batch: int, channels_last: bool = False) -> dict[str, float]:
        key = (arch, normalize, repr(sorted(spec.build_args.items())), batch, channels_last)
        if key not in self._cache:
            model = self._model(arch, normalize, spec)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            x = torch.rand(batch, 3, 32, 32, device=self.device)
            y = torch.randint(0, self.num_classes, (batch,), device=self.device)
            opt = torch.optim.SGD(model.parameters(), lr=0.0)

            def train_step():
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()

            def forward():
                with torch.inference_mode():
                    model(x)

            def gradient():
                xr = x.clone().requires_grad_(True)
                torch.autograd.grad(torch.nn.functional.cross_entropy(model(xr), y), xr)

            model.train()
            step = _timed(train_step)
            model.eval().requires_grad_(False)
            self._cache[key] = {"train": step, "forward": _timed(forward), "gradient": _timed(gradient)}
        return self._cache[key]

    def perturb(self, cond, level, images: int = 16) -> float:
        """Seconds per image to make a model-independent condition's images (corruptions are made
        on the CPU, image by image), timed on random images."""
        key = (cond.name, cond.group, repr(level))
        if key not in self._cache:
            g = torch.Generator().manual_seed(0)
            x = torch.rand(images, 3, 32, 32, generator=g).to(self.device)
            y = torch.zeros(images, dtype=torch.long, device=self.device)
            idx = torch.arange(images)
            with torch.inference_mode():
                self._cache[key] = _timed(lambda: cond.perturb(x, y, idx, level), repeats=1) / images
        return self._cache[key]


def _arch(suite, name: str) -> tuple | None:
    """(arch, normalize, the model's spec), or None for a model kdbench does not build (RobustBench)."""
    spec = suite.teachers.get(name) or suite.students.get(name)
    return (spec.arch, spec.normalize, spec) if spec is not None and getattr(spec, "arch", None) else None


def estimate(
    plan: Plan, n_train: int, n_eval: int, device, todo, group_size: int = 1, cached_logits=frozenset()
) -> dict[str, float]:
    """Seconds per job hash for the jobs in `todo` (NaN where the architecture is not one of
    kdbench's, e.g. a RobustBench model). Evaluations scored together in groups of `group_size`
    share the making of the perturbed images (corruptions), priced once per group; a teacher's
    cached outputs are priced once, for the first job that needs them, and not at all where
    `cached_logits` holds their key (teacher hashes, already on disk)."""
    suite = plan.suite
    prices = Prices(device)
    ev = suite.evaluate
    conds = conditions_of(ev)
    out: dict[str, float] = {}
    made = set(cached_logits)
    first_of_group = {g[0].hash for g in job_groups(todo, group_size) if g[0].kind == "evaluate"}
    for job in todo:
        arch = _arch(suite, job.model)
        if arch is None:
            out[job.hash] = math.nan
            continue
        if job.kind in ("teacher", "student") and "recipe" in job.spec:
            recipe = TrainRecipe.model_validate(job.spec["recipe"])
            per_epoch = math.ceil(n_train / recipe.batch_size)
            method = job.spec.get("method", {})
            # a pre-training stage (AB, FSP, FT) is priced as training steps that run the teacher
            pre = (method.get("init_epochs") or 0) * per_epoch
            steps = recipe.epochs * per_epoch
            seconds = (steps + pre) * prices.of(*arch, recipe.batch_size, recipe.channels_last)["train"]
            attack = method.get("attack")
            if attack:  # adversarial training: the inner attack's gradient passes in every step
                seconds += steps * attack["steps"] * prices.of(*arch, recipe.batch_size)["gradient"]
            through_teacher = attack and method.get("name") in METHODS and METHODS.get(method["name"]).attacks_teacher
            key = tuple(d.hash for d in job.deps)
            for dep in job.deps:  # a teacher's forwards: once over the data when cached, else every step
                t_arch = _arch(suite, dep.model)
                if t_arch is None:
                    continue
                per = prices.of(*t_arch, recipe.batch_size)
                seconds += per["forward"] * pre
                if through_teacher:
                    seconds += steps * attack["steps"] * per["gradient"]
                if not recipe.augment and key in made:
                    continue
                seconds += per["forward"] * (steps if recipe.augment else per_epoch)
            if not recipe.augment and job.deps:
                made.add(key)
            out[job.hash] = seconds
        elif job.kind == "evaluate":
            p = prices.of(*arch, ev.batch_size, ev.channels_last)
            only = set(job.spec.get("only", [])) | {"clean"} if "only" in job.spec else None
            seconds = 0.0
            for c in conds:
                if only is not None and type(c).name not in only:  # registered names, as evaluate matches them
                    continue
                batches = math.ceil(c.limit(n_eval) / ev.batch_size)
                for level in c.levels():
                    f, g = c.passes(level)
                    seconds += batches * (f * p["forward"] + g * p["gradient"])
                    if c.group in ("noise", "corruption") and job.hash in first_of_group:
                        seconds += c.limit(n_eval) * prices.perturb(c, level)
            if only is None and ev.diagnostics.enabled and any(c.group == "attack" for c in conds):
                covered = [c.limit(n_eval) for c in conds if c.group == "attack"]
                probe = min(ev.diagnostics.subset, n_eval, *covered) / ev.batch_size
                pgd = [c for c in conds if type(c).name == "pgd"]  # more_steps_help: one per norm
                more = sum(c.passes(lv)[1] for c in pgd for lv in c.levels()) * ev.diagnostics.steps_factor
                seconds += probe * (ev.diagnostics.unbounded_steps + more) * p["gradient"]
            out[job.hash] = seconds
        else:
            out[job.hash] = 0.0  # a checkpoint or zoo teacher: loading only
    return out


def wall_clock(todo, seconds: dict[str, float], workers: int, group_size: int) -> float:
    """The run's length with `workers` jobs at once: the groups an executor makes, started in plan
    order as soon as their parents are done and a worker is free (as the local executor does)."""
    groups = job_groups(todo, group_size)
    made_by = {j.hash: g for g, group in enumerate(groups) for j in group}
    parents = [{made_by[d.hash] for j in group for d in j.deps if d.hash in made_by} for group in groups]
    cost = [sum(s for j in group if not math.isnan(s := seconds.get(j.hash, 0.0))) for group in groups]
    finish: dict[int, float] = {}
    free = [0.0] * max(1, workers)
    pending = list(range(len(groups)))
    while pending:
        # of the groups whose parents are done, the one that can start first (plan order on ties)
        ready = {g: max((finish[p] for p in parents[g]), default=0.0) for g in pending if parents[g] <= finish.keys()}
        g = min(ready, key=lambda g: (max(ready[g], min(free)), g))
        w = min(range(len(free)), key=free.__getitem__)
        finish[g] = free[w] = max(ready[g], free[w]) + cost[g]
        pending.remove(g)
    return max(finish.values(), default=0.0)


def say_estimate(plan: Plan, store, splits, test_eval, dev, force, workers: int, group: int, log) -> None:
    """Each job still to run with its estimate, then the run's wall-clock estimate at `workers` jobs at once."""
    from kdbench.pipeline.jobs import teacher_logits_path
    from kdbench.util.progress import rough_duration

    todo = [j for j in plan.jobs if force or not store.done(j)]
    cached = {
        tuple(d.hash for d in j.deps)
        for j in plan.jobs
        if j.kind == "student" and j.deps and "data" in j.spec
        if teacher_logits_path(store.root, j.deps, j.spec["data"]).is_file()
    }
    seconds = estimate(plan, len(splits.train), len(test_eval), dev, todo, group, cached)
    for job, line in zip(plan.jobs, plan.describe()):
        log(f"to run {line}  ~{rough_duration(seconds[job.hash])}" if job.hash in seconds else f"done   {line}")
    total = sum(s for s in seconds.values() if not math.isnan(s))
    unknown = sum(1 for s in seconds.values() if math.isnan(s))
    wall = wall_clock(todo, seconds, workers, group)
    log(
        f"estimate: about {rough_duration(wall)} for {len(todo)} job(s) on {dev}"
        + (f" at {workers} at once ({rough_duration(total)} of work)" if workers > 1 else "")
        + (f", plus {unknown} not priced (not a kdbench architecture)" if unknown else "")
        + "; rough: one batch per architecture timed here, without data loading; attacks priced on every "
        "example (they skip those misclassified when clean), AutoAttack and Square at their full budgets"
    )
