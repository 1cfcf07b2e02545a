"""model_metrics.csv's rows: every registered metric per model, seed and model-independent cell.

Fidelity needs a reference: a student's own teachers (an ensemble as its `ensemble` combines
them), else, for a twin without a teacher, the teachers of the student it is compared with, so
that both twins of a pair are measured against the same teacher. KL is taken at T = 1 and, where
the distilled method has a temperature, at that temperature too (a schedule: its last value).
Fidelity exists only in the cells the teacher was scored on (a teacher with `evaluate: clean`:
clean only).
"""

from __future__ import annotations

import math

from ..lazy import lazy
from ..methods.base import teacher_log_probs
from ..methods.temperature import temperature_at
from . import MODEL_METRICS

torch = lazy("torch")
pd = lazy("pandas")

COLUMNS = ["model", "role", "method", "arch", "seed", "condition", "group", "level", "metric", "value", "n", "reference", "temperature"]


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
    return list(source.teachers), source.ensemble or "mean_probs", temperature if temperature not in (None, 1.0) else None


def model_metric_rows(suite, logits_by: dict, labels, describe) -> pd.DataFrame:
    """`logits_by[(model, seed)][(condition, group, level)]` = (N, C) logits; `describe(model)` =
    (role, method, arch)."""
    rows = []
    for (name, seed), cells in logits_by.items():
        role, method, arch = describe(name)
        teachers, mode, temperature = reference_of(suite, name)
        t_cells = [logits_by.get((t, suite.teachers[t].seed), {}) for t in teachers]
        for key, z in cells.items():
            cond, group, level = key
            base = dict(model=name, role=role, method=method, arch=arch, seed=seed, condition=cond, group=group, level=level, n=len(z))
            for metric in (m for _, m in MODEL_METRICS.items() if m.kind == "calibration"):
                rows.append(base | dict(metric=metric.name, value=metric.fn(z, labels), reference="", temperature=math.nan))
            if not teachers or not all(key in tc for tc in t_cells):
                continue
            stacked = torch.stack([tc[key] for tc in t_cells])
            ref = "+".join(teachers)
            for metric in (m for _, m in MODEL_METRICS.items() if m.kind == "fidelity"):
                for t in [1.0] + ([temperature] if metric.tempered and temperature is not None else []):
                    value = metric.fn(z, labels, teacher_log_probs(stacked, t, mode), temperature=t)
                    rows.append(base | dict(metric=metric.name, value=value, reference=ref, temperature=t if metric.tempered else math.nan))
    return pd.DataFrame(rows, columns=COLUMNS)
