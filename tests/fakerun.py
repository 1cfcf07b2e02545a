"""Fake run directories with known per-example results, written through kdbench.results.contract.write_run.

`fake_results(...)` returns the pieces (manifest, metrics, example_index, correct, agreement) so a
test can change them (flip examples, rename models) before `write(path, pieces)`.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kdbench.results.write import write_run
from kdbench.util.names import BENCHMARK_CORRUPTIONS, RESULTS_FORMAT, corruption_condition

SIGMAS = (0.05, 0.1)
EPSILONS = (1 / 255, 4 / 255)
CORRUPTIONS15 = BENCHMARK_CORRUPTIONS

# (name, role, method, arch, base skill)
MODELS = (
    ("wrn40_2-teacher", "teacher", "teacher", "wrn40_2", 0.93),
    ("resnet20-baseline", "baseline", "baseline", "resnet20", 0.85),
    ("resnet20-kd", "distilled", "kd", "resnet20", 0.87),
)


@dataclass
class Pieces:
    manifest: dict
    metrics: pd.DataFrame
    example_index: np.ndarray
    correct: np.ndarray
    agreement: pd.DataFrame

    def copy(self) -> "Pieces":
        return Pieces(
            copy.deepcopy(self.manifest),
            self.metrics.copy(),
            self.example_index.copy(),
            self.correct.copy(),
            self.agreement.copy(),
        )

    def rows(self, model=None, condition=None, level=None, group=None) -> np.ndarray:
        m = self.metrics
        keep = np.ones(len(m), bool)
        if model is not None:
            keep &= (m["model"] == model).to_numpy()
        if condition is not None:
            keep &= (m["condition"] == condition).to_numpy()
        if group is not None:
            keep &= (m["group"] == group).to_numpy()
        if level is not None:
            keep &= (
                m["level"] == format(level, ".6g") if not isinstance(level, str) else m["level"] == level
            ).to_numpy()
        return np.flatnonzero(keep)

    def resync(self) -> None:
        """Recompute correct/accuracy after editing per-example results."""
        self.metrics["correct"] = self.correct.sum(axis=1)
        self.metrics["accuracy"] = self.metrics["correct"] / self.metrics["n"]


def _conditions(corruptions: bool, severities=(1, 2, 3, 4, 5)):
    out = [("clean", "clean", "", 0.0)]
    out += [("gaussian_noise", "noise", format(s, ".6g"), 1.5 * s) for s in SIGMAS]
    for i, attack in enumerate(("fgsm", "pgd")):
        out += [(attack, "attack", format(e, ".6g"), (0.08 + 0.04 * i) * e * 255) for e in EPSILONS]
    if corruptions:
        for j, name in enumerate(CORRUPTIONS15):
            out += [(corruption_condition(name), "corruption", str(s), 0.02 * s + 0.01 * (j % 5)) for s in severities]
    return out


def fake_results(
    n: int = 500,
    seeds=(0,),
    models=MODELS,
    corruptions: bool = False,
    seed: int = 0,
    example_index=None,
    eval_spec_hash: str = "spec-v1",
    suite_extra: dict | None = None,
) -> Pieces:
    """A run in which every model's correctness is a deterministic function of (seed, model, condition).

    Each example has a difficulty u; a model is right where u < skill * (1 - hardness), so harder
    conditions lose examples monotonically, and each training seed re-draws a small share of
    examples so seeds differ by about a percentage point.
    """
    rng = np.random.default_rng(seed)
    if example_index is None:
        example_index = np.sort(rng.choice(10000, size=n, replace=False))
    example_index = np.asarray(example_index, dtype=np.int64)
    n = len(example_index)
    u = np.random.default_rng(1234).random(10000)[example_index]
    rows, correct = [], []
    conds = _conditions(corruptions)
    for name, role, method, arch, skill in models:
        model_seeds = (0,) if role == "teacher" else seeds
        for s in model_seeds:
            srng = np.random.default_rng([seed, s, zlib.crc32(name.encode())])
            redraw = srng.random(n) < 0.04
            u_s = np.where(redraw, srng.random(n), u)
            for condition, group, level, hardness in conds:
                ok = u_s < skill * (1 - hardness)
                rows.append(
                    dict(
                        model=name,
                        role=role,
                        method=method,
                        arch=arch,
                        seed=s,
                        condition=condition,
                        group=group,
                        level=level,
                        n=n,
                        correct=int(ok.sum()),
                        accuracy=ok.mean(),
                    )
                )
                correct.append(ok)
    metrics = pd.DataFrame(rows)
    correct = np.array(correct, bool)
    agree = []
    teachers = [m[0] for m in models if m[1] == "teacher"]
    for name, role, *_ in models:
        if role == "distilled":
            for s in seeds:
                k = int(0.9 * n) + s
                agree.append(dict(model=name, seed=s, teachers="+".join(teachers), n=n, agree=k, agreement=k / n))
    agreement = pd.DataFrame(agree, columns=["model", "seed", "teachers", "n", "agree", "agreement"])
    suite = {
        "name": "fake",
        "evaluate": {"n_examples": n, "conditions": [c[0] for c in conds]},
        "compare": [],
    }
    suite.update(suite_extra or {})
    baselines = {m[3]: m[0] for m in models if m[1] == "baseline"}
    compare = [
        {"distilled": m[0], "baseline": baselines[m[3]]}
        for m in models
        if m[1] in ("distilled", "control") and m[3] in baselines
    ]
    manifest = {
        "kdbench_version": "0.1.0",
        "results_format": RESULTS_FORMAT,
        "torch": "2.4.0",
        "torchvision": "0.19.0",
        "torchattacks": "3.5.1",
        "python": "3.11.2",
        "git_commit": "0123456789abcdef",
        "device": "cpu",
        "device_name": "cpu",
        "cpu": "Fake CPU",
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:04:10Z",
        "wall_s": 250.0,
        "suite_name": "fake",
        "suite": suite,
        "suite_hash": "suite-" + eval_spec_hash,
        "eval_spec_hash": eval_spec_hash,
        "example_ids_sha256": f"ids-{zlib.crc32(example_index.tobytes()):08x}",
        "compare": compare,
        # the same fake networks for the same (seed, model, training seed): a copy is "re-evaluated"
        "weights_sha256": {
            m[0]: {
                str(s): f"w{seed}-{zlib.crc32(m[0].encode()):08x}-{s}" for s in ((0,) if m[1] == "teacher" else seeds)
            }
            for m in models
        },
        "jobs": [
            {
                "id": f"train-{m[0]}-{s}",
                "kind": "train",
                "hash": "h",
                "model": m[0],
                "seed": s,
                "wall_s": 60.0,
                "cached": False,
            }
            for m in models
            for s in seeds
        ],
    }
    return Pieces(manifest, metrics, example_index, correct, agreement)


def write(path, pieces: Pieces):
    return write_run(path, pieces.manifest, pieces.metrics, pieces.example_index, pieces.correct, pieces.agreement)


def retrain(pieces: Pieces, models=None, tag: str = "retrained") -> None:
    """Mark models (default: all) as retrained networks: new weights hashes, so the gate uses its
    method-level test instead of the same-networks McNemar test."""
    for model, seeds in pieces.manifest["weights_sha256"].items():
        if models is None or model in models:
            pieces.manifest["weights_sha256"][model] = {s: f"{h}-{tag}" for s, h in seeds.items()}


def flip_correct_to_wrong(pieces: Pieces, rows, fraction: float, seed: int = 0) -> None:
    """Turn `fraction` of each row's correct examples wrong (a known, one-directional regression)."""
    rng = np.random.default_rng(seed)
    for r in np.atleast_1d(rows):
        right = np.flatnonzero(pieces.correct[r])
        k = int(round(fraction * right.size))
        pieces.correct[r, rng.choice(right, size=k, replace=False)] = False
    pieces.resync()


def jitter(pieces: Pieces, share: float, seed: int = 0) -> None:
    """Re-draw a small share of every row's examples both ways: seed-level noise without a trend."""
    rng = np.random.default_rng(seed)
    mask = rng.random(pieces.correct.shape) < share
    pieces.correct[mask] = (
        rng.random(int(mask.sum()))
        < pieces.correct.mean(axis=1, keepdims=True).repeat(pieces.correct.shape[1], 1)[mask]
    )
    pieces.resync()
