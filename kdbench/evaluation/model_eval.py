"""What evaluating one model gives (`ModelEval`, a row per `Cell`), and its file in the job store:
`save_eval` writes eval.npz (and diagnostics.json, the gradient-masking checks and the seconds
spent per attack), `load_eval` reads them back as arrays, for the run's tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdbench.util.levels import level_str

EVAL = "eval.npz"
DIAGNOSTICS = "diagnostics.json"


@dataclass(frozen=True)
class Cell:
    """One (condition, level) column of the results."""

    condition: str
    group: str
    level: object


@dataclass
class ModelEval:
    cells: list[Cell]
    correct: torch.Tensor  # (len(cells), N) bool, on the CPU
    # (R, N, C) float32 on the CPU: the logits under each scored cell: model-independent ones
    # (clean, noise, corruptions: the inputs every model saw alike) and attacks (each model's own
    # adversarial inputs; calibration under attack); `logit_rows` are their indices in `cells`
    logits: torch.Tensor
    logit_rows: list[int]
    attack_seconds: dict[str, float] = field(default_factory=dict)  # condition -> seconds spent attacking this model
    # cell row -> (N,) bool: for an attack crafted on another model (transfer), whether that source
    # model classified its own adversarial example correctly (transferability needs where it did not)
    source_correct: dict[int, torch.Tensor] = field(default_factory=dict)
    # (n, 3, H, W) on the CPU: d z_y / d x on the first `saliency` clean examples (saliency agreement)
    saliency: torch.Tensor | None = None
    # attack cell row -> (T, N, C) float32 on the CPU: the reference teachers' logits on this
    # model's own adversarial examples (fidelity under attack)
    reference_logits: dict[int, torch.Tensor] = field(default_factory=dict)
    # per cell: how many examples, from the first, it covers (N where a condition takes them all)
    counts: list[int] = field(default_factory=list)

    @property
    def clean_logits(self) -> torch.Tensor:
        """(N, C): the logits on the clean images."""
        clean = [j for j, r in enumerate(self.logit_rows) if self.cells[r].group == "clean"]
        return self.logits[clean[0]] if clean else torch.empty(0)


@dataclass
class StoredEval:
    """One evaluated model as the run's tables read it back: its description and, per results cell
    `(condition, group, level)` as metrics.csv writes them, what the model metrics need."""

    name: str
    seed: int
    role: str
    method: str
    arch: str
    logits: dict  # cell -> (n, C) logits, n the examples the cell covers
    saliency: torch.Tensor | None = None  # (n, 3, H, W) input gradients of the first n examples
    # transfer cell -> (source model, this model right, the source right on its own adversarial examples)
    transfer: dict = field(default_factory=dict)
    # attack cell -> (T, n, C) the reference teachers' logits on this model's adversarial examples
    attack_refs: dict = field(default_factory=dict)


def save_eval(out: Path, r: ModelEval, example_index: torch.Tensor, checks: list[dict], seconds: dict) -> None:
    """Write `r` into the job folder `out`, with the examples' indices in the test set."""
    n = len(example_index)
    (out / DIAGNOSTICS).write_text(json.dumps({"checks": checks, "attack_seconds": seconds}, indent=1))
    with open(out / EVAL, "wb") as fh:
        np.savez_compressed(
            fh,
            condition=np.array([c.condition for c in r.cells]),
            group=np.array([c.group for c in r.cells]),
            level=np.array([level_str(c.level) for c in r.cells]),
            correct=np.packbits(r.correct.numpy(), axis=1),
            # per cell, how many examples from the first it covers (a condition's own n)
            count=np.asarray(r.counts, dtype=np.int64),
            logits=r.logits.numpy().astype(np.float32),  # model-independent cells: calibration, fidelity
            logit_rows=np.asarray(r.logit_rows, dtype=np.int64),
            example_index=example_index.numpy().astype(np.int64),
            # the first n_sal examples' input gradients, fp16: saliency agreement (6 MB per 1,000)
            saliency=r.saliency.numpy().astype(np.float16),
            # transfer rows: whether the source model resisted its own adversarial example
            source_rows=np.asarray(sorted(r.source_correct), dtype=np.int64),
            source_correct=np.packbits(
                np.stack([r.source_correct[i].numpy() for i in sorted(r.source_correct)])
                if r.source_correct
                else np.zeros((0, n), bool),
                axis=1,
            ),
            # attack rows: the reference teachers' logits on this model's adversarial examples
            reference_rows=np.asarray(sorted(r.reference_logits), dtype=np.int64),
            reference_logits=np.stack([r.reference_logits[i].numpy() for i in sorted(r.reference_logits)])
            if r.reference_logits
            else np.zeros((0, 0, n, 0), np.float32),
        )


def load_eval(folder: Path) -> dict:
    """An evaluation job's folder as arrays: eval.npz's, correctness unpacked, and the checks."""
    with np.load(Path(folder) / EVAL, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    n = len(out["example_index"])
    out["correct"] = np.unpackbits(out["correct"], axis=1, count=n).astype(bool)
    if "count" not in out:  # evaluations made before conditions took their own n covered every example
        out["count"] = np.full(len(out["correct"]), n, dtype=np.int64)
    if "source_correct" in out:
        out["source_correct"] = np.unpackbits(out["source_correct"], axis=1, count=n).astype(bool)
    extra = Path(folder) / DIAGNOSTICS
    out.update(json.loads(extra.read_text()) if extra.is_file() else {"checks": [], "attack_seconds": {}})
    return out
