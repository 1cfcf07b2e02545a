"""Suite -> a graph of jobs, each keyed by a content hash of everything that determines its output.

Kinds: `teacher` (train from a recipe, or load a checkpoint / zoo model), `student` (one seed),
`evaluate` (one model under every condition). A job's hash covers its own description, the
data identity, the hashes of the jobs it reads, and CACHE_VERSION; change any and it reruns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kdbench.config import Suite, conditions_of, transfer_source
from kdbench.config.plugins import plugin_hashes
from kdbench.util.hashing import content_hash

# Bumped when a change to training code changes results, to invalidate caches (every job's hash).
CACHE_VERSION = 1
# Bumped when a change to evaluation code changes results: it invalidates evaluations only, and
# makes runs before and after it incomparable to the gate. 2: attack random starts per example.
# 3: the logits under every model-independent condition are kept (calibration and fidelity).
# 4: attack logits, input gradients on the first evaluate.saliency examples, and whether a transfer
# source resisted its own examples are kept too (calibration under attack, saliency, transferability).
EVALUATION_VERSION = 4


@dataclass
class Job:
    kind: str
    model: str
    seed: int
    spec: dict
    deps: list["Job"] = field(default_factory=list)
    hash: str = ""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.model}:seed{self.seed}"

    def __post_init__(self):
        self.hash = content_hash(
            {"kind": self.kind, "spec": self.spec, "deps": [d.hash for d in self.deps], "cache_version": CACHE_VERSION}
        )


@dataclass
class Plan:
    suite: Suite
    jobs: list[Job]
    eval_jobs: dict[tuple[str, int], Job]  # (model, seed) -> its evaluation
    eval_spec: dict

    def describe(self) -> list[str]:
        return [f"{j.id:<48} {j.hash}  <- {', '.join(d.id for d in j.deps) or '-'}" for j in self.jobs]


def eval_spec_of(suite: Suite, example_ids_sha256: str) -> dict:
    """What determines the evaluation of a model, apart from the model: conditions, levels, attack
    parameters, the examples, and the batch size where an attack's randomness depends on it. Two
    runs are comparable only when this is the same."""
    ev = suite.evaluate
    built = conditions_of(ev)
    # where files live or are cached does not change what is measured, nor does a table that only
    # the summary reads (published corruption errors)
    where = {"root", "cache", "published_errors"}

    def params(c) -> dict:
        fields = set(type(c.params).model_fields)
        # the default norm, and n when absent, are left out, so that the evaluations made before
        # they existed keep their hashes
        linf = {"norm"} if getattr(c.params, "norm", None) == "Linf" else set()
        every = {"n"} if c.params.n is None else set()
        return c.params.model_dump(mode="json", exclude=(where | linf | every) & fields)

    conds = [{"name": c.name, "group": c.group, "levels": c.levels(), "params": params(c)} for c in built]
    from kdbench.evaluation.conditions import CONDITIONS

    spec = {
        "version": EVALUATION_VERSION,
        "seed": ev.seed,
        "conditions": conds,
        "diagnostics": ev.diagnostics.model_dump(mode="json"),
        "saliency": ev.saliency,
        "example_ids_sha256": example_ids_sha256,
    }
    used = plugin_hashes(*((CONDITIONS, n) for n, _ in CONDITIONS.items() if getattr(ev, n, None) is not None))
    if used:  # the source of the plugin conditions it runs (absent for built-ins: their hashes stay)
        spec["plugins"] = used
    if not all(getattr(c, "batch_independent", True) for c in built):
        spec["batch_size"] = ev.batch_size
    if ev.compile:  # absent when false, so that existing evaluations keep their hashes
        spec["compile"] = ev.compile
    if ev.channels_last:  # likewise
        spec["channels_last"] = True
    return spec


def make_plan(suite: Suite, data_identity: str, example_ids_sha256: str, identities: dict) -> Plan:
    """The jobs of `suite`. `identities` holds the SHA-256 of what is loaded rather than trained:
    a checkpoint or zoo teacher's by name, a loaded student's by (name, seed)."""
    jobs: list[Job] = []
    model_jobs: dict[tuple[str, int], Job] = {}  # (model, seed) -> the job that makes its weights
    from kdbench.data import DATASETS
    from kdbench.evaluation.model_metrics.rows import reference_of
    from kdbench.models import MODELS
    from kdbench.training.methods import METHODS

    data = {"identity": data_identity, **suite.dataset.model_dump(mode="json", exclude={"root", "download"})}
    if plugin_hashes((DATASETS, suite.dataset.name)):
        data["plugins"] = plugin_hashes((DATASETS, suite.dataset.name))

    def with_plugins(spec: dict, arch, method) -> dict:
        """The source hashes of the plugins that define the model's architecture and method: editing
        one reruns exactly the jobs that use it (none for built-ins, whose hashes stay)."""
        used = plugin_hashes((MODELS, arch), (METHODS, method))
        return spec | {"plugins": used} if used else spec

    # portable mode computes differently (ATen's baseline kernels, no oneDNN, one thread): in the
    # hash of every job that computes, absent otherwise so that existing jobs keep their hashes
    mode = {"reproducible": suite.reproducible} if suite.reproducible != "machine" else {}

    for name, t in suite.teachers.items():
        spec = {"source": t.source, "arch": t.arch, "normalize": t.normalize, **t.build_args}
        if t.source == "recipe":
            spec |= {"recipe": suite.recipe_of(name).hash_spec(), "seed": t.seed, "data": data, **mode}
            if t.method is not None:  # absent for the default, so that existing teachers keep their hashes
                spec["method"] = t.method.model_dump(mode="json")
        elif t.source == "checkpoint":
            spec |= {"checkpoint_sha256": identities[name]}
        else:
            spec |= {
                "robustbench": t.robustbench,
                "threat_model": t.threat_model,
                "weights_sha256": identities[name],
            }
        job = Job(
            "teacher", name, t.seed, with_plugins(spec, t.arch, t.method_spec.name if t.source == "recipe" else None)
        )
        jobs.append(job)
        model_jobs[(name, t.seed)] = job
    for name, s in suite.students.items():
        teacher_jobs = [model_jobs[(t, suite.teachers[t].seed)] for t in s.teachers]
        for seed in s.seeds:
            if s.loaded:  # trained elsewhere: the job loads the file (its bytes in the hash) and trains nothing
                spec = {
                    "source": "checkpoint",
                    "arch": s.arch,
                    "normalize": s.normalize,
                    **s.build_args,
                    "method": s.method.model_dump(mode="json"),
                    "checkpoint_sha256": identities[(name, seed)],
                    "seed": seed,
                }
                job = Job("student", name, seed, with_plugins(spec, s.arch, None))
                jobs.append(job)
                model_jobs[(name, seed)] = job
                continue
            spec = {
                "arch": s.arch,
                "normalize": s.normalize,
                **s.build_args,  # absent when empty: built-in students keep their hashes
                "method": s.method.model_dump(mode="json"),
                "ensemble": s.ensemble if len(s.teachers) > 1 else None,
                "recipe": suite.recipe_of(name).hash_spec(),
                "seed": seed,
                "data": data,
                **mode,
            }
            job = Job("student", name, seed, with_plugins(spec, s.arch, s.method.name), deps=teacher_jobs)
            jobs.append(job)
            model_jobs[(name, seed)] = job
    eval_spec = eval_spec_of(suite, example_ids_sha256)
    # not in the evaluation's specification: it adds model metrics, never changes metrics.csv
    attacked = suite.evaluate.fidelity_under_attack and any(c["group"] == "attack" for c in eval_spec["conditions"])
    eval_jobs = {}
    for (name, seed), mj in model_jobs.items():
        spec = {"eval": eval_spec, "data": data, **mode}
        deps = [mj]
        choice = suite.teachers[name].evaluate if name in suite.teachers else "all"
        if choice != "all":
            spec["only"] = ["clean"] if choice == "clean" else sorted({"clean", *choice})
        else:
            source = transfer_source(suite, name, seed)
            if source is not None:  # the second dependency is the model the transfer attack crafts on
                spec["transfer_source"] = f"{source[0]}:seed{source[1]}"
                deps.append(model_jobs[source])
            # fidelity under attack: the student's reference teachers, run on its own adversarial
            # examples, are the last dependencies
            teachers = reference_of(suite, name)[0] if attacked and name in suite.students else []
            if teachers:
                refs = [(t, suite.teachers[t].seed) for t in teachers]
                spec["attack_reference"] = [f"{t}:seed{s}" for t, s in refs]
                deps += [model_jobs[r] for r in refs]
        job = Job("evaluate", name, seed, spec, deps=deps)
        jobs.append(job)
        eval_jobs[(name, seed)] = job
    return Plan(suite, jobs, eval_jobs, eval_spec)
