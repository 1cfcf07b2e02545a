"""model_metrics.csv's rows: every registered metric per model, seed and model-independent cell.

Fidelity needs a reference: a student's own teachers (an ensemble as its `ensemble` combines
them), else, for a twin without a teacher, the teachers of the student it is compared with, so
that both twins of a pair are measured against the same teacher. KL is taken at T = 1 and, where
the distilled method has a temperature, at that temperature too (a schedule: its last value).
Fidelity exists only in the cells the teacher was scored on (a teacher with `evaluate: clean`:
clean only), and under each attack, where the evaluation runs the teachers on the model's own
adversarial examples (fidelity under attack).
"""

from __future__ import annotations

import math

import numpy as np

from kdbench.evaluation.model_metrics import MODEL_METRICS
from kdbench.models.soft_targets import teacher_log_probs, temperature_at
from kdbench.results.contract import MODEL_METRIC_COLUMNS
from kdbench.util.lazy import lazy

torch = lazy("torch")
pd = lazy("pandas")


def reference_of(suite, name: str) -> tuple[list[str], str, float | None]:
    """(teachers, ensemble mode, distillation temperature or None) a student is measured against."""
    s = suite.students.get(name)
    if s is None:
        return [], "mean_probs", None
    partners = [suite.students[p] for p in suite.partners(name)]
    source = s if s.teachers else next((p for p in partners if p.teachers), None)
    if source is None:
        return [], "mean_probs", None
    t = getattr(source.method, "temperature", None)
    temperature = float(temperature_at(t, 1.0)) if t is not None else None
    return (
        list(source.teachers),
        source.ensemble or "mean_probs",
        temperature if temperature not in (None, 1.0) else None,
    )


def model_metric_rows(suite, models: dict, labels) -> tuple[pd.DataFrame, dict]:
    """`models[(model, seed)]`: a `StoredEval` (evaluation.model_eval) per evaluated model, in the
    run's order. Returns the rows and, by row position, the per-example values (N,) of the metrics
    that are means over examples (NaN where a metric does not cover an example: past the saliency
    subset, or where the source resisted)."""
    rows, values = [], {}
    n_all = len(labels)

    def add(row, metric, *args, **kw):
        value, per = metric.values(*args, **kw)
        if per is not None:
            if len(per) < n_all:
                per = np.concatenate([per, np.full(n_all - len(per), np.nan, dtype=per.dtype)])
            values[len(rows)] = per
        rows.append(row | dict(value=value))

    described = {m.name: (m.role, m.method, m.arch) for m in models.values()}
    for (name, seed), scored in models.items():
        role, method, arch = described[name]
        teachers, mode, temperature = reference_of(suite, name)
        t_cells = [getattr(models.get((t, suite.teachers[t].seed)), "logits", {}) for t in teachers]
        for key, z in scored.logits.items():
            cond, group, level = key
            y = labels[: len(z)]  # a condition scored on its first n examples
            base = dict(
                model=name,
                role=role,
                method=method,
                arch=arch,
                seed=seed,
                condition=cond,
                group=group,
                level=level,
                n=len(z),
            )
            for metric in (m for _, m in MODEL_METRICS.items() if m.kind == "calibration"):
                add(base | dict(metric=metric.name, reference="", temperature=math.nan), metric, z, y)
            # fidelity needs the teacher on the same inputs: under attack, the model's own
            # adversarial examples, which its evaluation ran the teachers on
            if not teachers:
                continue
            if group == "attack":
                stacked = scored.attack_refs.get(key)
            elif all(key in tc for tc in t_cells):
                stacked = torch.stack([tc[key][: len(z)] for tc in t_cells])
            else:
                stacked = None
            if stacked is None:
                continue
            ref = "+".join(teachers)
            for metric in (m for _, m in MODEL_METRICS.items() if m.kind == "fidelity"):
                for t in [1.0] + ([temperature] if metric.tempered and temperature is not None else []):
                    add(
                        base | dict(metric=metric.name, reference=ref, temperature=t if metric.tempered else math.nan),
                        metric,
                        z,
                        y,
                        teacher_log_probs(stacked, t, mode),
                        temperature=t,
                    )
    grads_by = {k: m.saliency for k, m in models.items() if m.saliency is not None}
    if grads_by:
        _saliency_rows(suite, grads_by, described.__getitem__, add)
    metric = MODEL_METRICS.get("transfer_rate")
    for (name, seed), scored in models.items():
        role, method, arch = described[name]
        for (cond, group, level), (source, right, source_right) in scored.transfer.items():
            base = dict(
                model=name,
                role=role,
                method=method,
                arch=arch,
                seed=seed,
                condition=cond,
                group=group,
                level=level,
                n=int((~source_right.bool()).sum()),
                reference=source,
                temperature=math.nan,
            )
            add(base | dict(metric=metric.name), metric, right, source_right)
    return pd.DataFrame(rows, columns=MODEL_METRIC_COLUMNS), values


def _saliency_rows(suite, grads_by: dict, describe, add) -> None:
    """saliency_teacher for every student with a reference teacher (both twins, as fidelity);
    saliency_twin for every compare pair, seed by seed where both trained that seed."""
    clean = dict(condition="clean", group="clean", level="")
    teacher_metric, twin_metric = MODEL_METRICS.get("saliency_teacher"), MODEL_METRICS.get("saliency_twin")
    for (name, seed), g in grads_by.items():
        teachers, _, _ = reference_of(suite, name)
        refs = [grads_by.get((t, suite.teachers[t].seed)) for t in teachers]
        if name not in suite.students or not teachers or any(r is None or len(r) != len(g) for r in refs) or not len(g):
            continue
        role, method, arch = describe(name)
        base = dict(
            model=name,
            role=role,
            method=method,
            arch=arch,
            seed=seed,
            n=len(g),
            reference="+".join(teachers),
            temperature=math.nan,
        )
        add(base | clean | dict(metric=teacher_metric.name), teacher_metric, g, refs)
    for pair in suite.pairs():
        for seed in suite.students[pair.distilled].seeds:
            g, twin = grads_by.get((pair.distilled, seed)), grads_by.get((pair.baseline, seed))
            if g is None or twin is None or not len(g):
                continue
            role, method, arch = describe(pair.distilled)
            base = dict(
                model=pair.distilled,
                role=role,
                method=method,
                arch=arch,
                seed=seed,
                n=len(g),
                reference=pair.baseline,
                temperature=math.nan,
            )
            add(base | clean | dict(metric=twin_metric.name), twin_metric, g, twin)
