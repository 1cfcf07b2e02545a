"""The run's tables from its jobs' outputs: metrics rows, per-example correctness, agreement with
the teachers, the gradient-masking checks, the model metrics, the training curves, the corruption
summary, and the weights' hashes the gate tells "re-evaluated" from "retrained" by."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from kdbench.config import Suite, transfer_source
from kdbench.config.plugins import plugin_failure
from kdbench.evaluation.model_eval import StoredEval, load_eval
from kdbench.evaluation.model_metrics.rows import model_metric_rows
from kdbench.executors.store import Store
from kdbench.models.soft_targets import teacher_log_probs
from kdbench.pipeline.plan import Plan
from kdbench.results.contract import DIAGNOSTIC_COLUMNS, TRAINING_COLUMNS
from kdbench.training.loop import epoch_metrics
from kdbench.util.errors import CodeFailed
from kdbench.util.hashing import weights_sha256
from kdbench.util.names import corruption_condition


def assemble(plan: Plan, store: Store, test_eval):
    """Metrics rows, per-example correctness and agreement, from the evaluate jobs' outputs."""
    suite = plan.suite
    rows, correct_rows, checks, seconds = [], [], [], {}
    scored: dict[tuple[str, int], StoredEval] = {}  # (model, seed) -> what the model metrics read
    for (name, seed), job in plan.eval_jobs.items():
        ev = load_eval(store.path(job))
        # an evaluation cached before the L2 threat model names no norm: its checks with an eps are Linf's
        checks += [dict(model=name, seed=seed, norm="Linf" if c["eps"] else "") | c for c in ev["checks"]]
        if ev["attack_seconds"]:
            seconds[f"{name}:seed{seed}"] = ev["attack_seconds"]
        if name in suite.teachers:
            t = suite.teachers[name]
            # a trained teacher names its method (a T=100 teacher is not a plain one); others their source
            role, method, arch = (
                "teacher",
                t.method_spec.name if t.source == "recipe" else t.source,
                t.arch or t.robustbench,
            )
        else:
            s = suite.students[name]
            role, method, arch = s.role, s.method.name, s.arch
        keys = [
            (corruption_condition(str(c)) if g == "corruption" else str(c), str(g), str(lv))
            for c, g, lv in zip(ev["condition"], ev["group"], ev["level"])
        ]
        count = ev["count"]
        # a condition scored on its first n examples: its rows, logits and references cut to them
        scored[(name, seed)] = StoredEval(
            name,
            seed,
            role,
            method,
            arch,
            logits={keys[r]: torch.from_numpy(ev["logits"][j][: count[r]]) for j, r in enumerate(ev["logit_rows"])},
            saliency=torch.from_numpy(ev["saliency"]).float() if "saliency" in ev else None,
            # transfer cells: (this model right, the source right), per example
            transfer={
                keys[r]: (
                    transfer_source(suite, name, seed)[0],
                    torch.from_numpy(ev["correct"][r][: count[r]]),
                    torch.from_numpy(ev["source_correct"][j][: count[r]]),
                )
                for j, r in enumerate(ev.get("source_rows", []))
            },
            # attack cells: the reference teachers' logits on this model's adversarial examples
            attack_refs={
                keys[r]: torch.from_numpy(ev["reference_logits"][j][:, : count[r]])
                for j, r in enumerate(ev.get("reference_rows", []))
            },
        )
        for c, k, (cond, group, level) in zip(ev["correct"], count, keys):
            rows.append(
                dict(
                    model=name,
                    role=role,
                    method=method,
                    arch=arch,
                    seed=seed,
                    condition=cond,
                    group=group,
                    level=level,
                    n=int(k),
                    correct=int(c[:k].sum()),
                    accuracy=float(c[:k].mean()),
                )
            )
            correct_rows.append(c)
    clean = ("clean", "clean", "")
    agreement = []
    for name, s in suite.students.items():
        if not s.teachers:
            continue
        t_logits = torch.stack([scored[(t, suite.teachers[t].seed)].logits[clean] for t in s.teachers])
        t_pred = teacher_log_probs(t_logits, 1.0, s.ensemble or "mean_probs").argmax(1)
        for seed in s.seeds:
            agree = int((scored[(name, seed)].logits[clean].argmax(1) == t_pred).sum())
            agreement.append(
                dict(
                    model=name,
                    seed=seed,
                    teachers="+".join(s.teachers),
                    n=len(t_pred),
                    agree=agree,
                    agreement=agree / len(t_pred),
                )
            )
    metrics = pd.DataFrame(rows)
    correct = np.stack(correct_rows) if correct_rows else np.zeros((0, len(test_eval)), dtype=bool)
    diagnostics = pd.DataFrame(checks, columns=DIAGNOSTIC_COLUMNS) if checks else None
    try:
        model_metrics = model_metric_rows(suite, scored, test_eval.labels.long())
    except Exception as exc:  # noqa: BLE001 - a plugin metric's exception is said with its own frames
        told = plugin_failure(exc)
        if told is None:
            raise
        raise CodeFailed(f"the model metrics: {told}") from None
    return metrics, correct, pd.DataFrame(agreement), diagnostics, seconds, model_metrics


def training_curves(plan: Plan, store: Store) -> pd.DataFrame:
    """Per-epoch rows (TRAINING_COLUMNS) of every model trained for this run, from its job's
    history.json: each named loss term, `loss` (their sum, the objective), train_accuracy and lr
    (absent for jobs trained before kdbench recorded it)."""
    suite, rows = plan.suite, []
    for (name, seed), job in plan.eval_jobs.items():
        history = store.path(job.deps[0]) / "history.json"
        if not history.is_file():  # loaded, not trained
            continue
        if name in suite.teachers:
            role, method = "teacher", suite.teachers[name].method_spec.name
        else:
            role, method = suite.students[name].role, suite.students[name].method.name
        for epoch in json.loads(history.read_text()):
            for metric, value in epoch_metrics(epoch).items():
                rows.append(
                    dict(
                        model=name,
                        role=role,
                        method=method,
                        seed=seed,
                        epoch=epoch["epoch"],
                        metric=metric,
                        value=value,
                    )
                )
    return pd.DataFrame(rows, columns=TRAINING_COLUMNS)


def corruption_summary(suite: Suite, metrics: pd.DataFrame):
    """Mean corruption accuracy, CE and mCE (against the suite's reference model), when corruptions ran."""
    spec = getattr(suite.evaluate, "corruptions", None)
    if spec is None or not (metrics["group"] == "corruption").any():
        return None
    from kdbench.evaluation.conditions.corruptions.metrics import corruption_summary as summarise
    from kdbench.evaluation.conditions.corruptions.metrics import published_mce

    summary = summarise(metrics, spec.reference_model)
    if spec.published_errors:
        summary = pd.concat([summary, published_mce(metrics, spec.published_errors)], ignore_index=True)
    return summary


def weights(plan: Plan, store: Store, load_model) -> dict[str, dict[str, str]]:
    """model -> seed -> the SHA-256 of the weights evaluated, as the evaluation job recorded it in
    its job.json; an evaluation made before it did is answered by loading the model (`load_model`)."""
    out: dict[str, dict[str, str]] = {}
    for (name, seed), job in plan.eval_jobs.items():
        meta = json.loads((store.path(job) / "job.json").read_text())
        sha = meta.get("weights_sha256") or weights_sha256(load_model(job.deps[0], keep=False))
        out.setdefault(name, {})[str(seed)] = sha
    return out
