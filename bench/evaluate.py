"""One evaluation loop. Each model-independent condition (clean, noise, corruptions) perturbs a
batch once and every model scores it; an attack runs per model. Correctness stays on the device
until the end, so scoring adds little to the bare forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .conditions import Condition
from .progress import bar


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
    clean_logits: torch.Tensor  # (N, C) float32, on the CPU


def cells_of(conditions: list[Condition]) -> list[Cell]:
    return [Cell(c.name, c.group, level) for c in conditions for level in c.levels()]


def evaluate(
    models: dict[str, nn.Module],
    conditions: list[Condition],
    images: torch.Tensor,
    labels: torch.Tensor,
    indices: torch.Tensor,
    *,
    batch_size: int = 256,
    device="cpu",
    only: dict[str, set[str]] | None = None,
) -> dict[str, ModelEval]:
    """Score every model under every condition on the uint8 `images` (N, 3, H, W);
    `only` limits a model to some condition names (clean is always scored)."""
    wants = {k: None if only is None or k not in only else set(only[k]) | {"clean"} for k in models}

    def scores(k: str, condition: str) -> bool:
        return wants[k] is None or condition in wants[k]

    cells = {k: [c for c in cells_of(conditions) if scores(k, c.condition)] for k in models}
    n = len(images)
    for m in models.values():
        m.to(device).eval().requires_grad_(False)  # attacks need input gradients only
    correct = {k: torch.zeros(len(cells[k]), n, dtype=torch.bool, device=device) for k in models}
    clean_logits: dict[str, list[torch.Tensor]] = {k: [] for k in models}
    labels_d = labels.to(device)
    # Converted once, then sliced: a fresh buffer per batch costs a cheap model a quarter of its time.
    # Conditions must not write into their input (the clean batch is shared by all of them).
    floats = images.to(device).float().div_(255)
    for start in bar(range(0, n, batch_size), desc=f"evaluate {len(models)} model(s)"):
        sl = slice(start, start + batch_size)
        x = floats[sl]
        y, idx = labels_d[sl], indices[sl]
        row = dict.fromkeys(models, 0)
        for cond in conditions:
            scored = {k: m for k, m in models.items() if scores(k, cond.name)}
            if not scored:
                continue
            for level in cond.levels():
                if cond.model_dependent:
                    for k, m in scored.items():
                        x_adv = cond.attack(m, x, y, idx, level)
                        with torch.inference_mode():
                            correct[k][row[k], sl] = m(x_adv).argmax(1) == y
                else:
                    with torch.inference_mode():
                        xp = cond.perturb(x, y, idx, level)
                        for k, m in scored.items():
                            logits = m(xp)
                            correct[k][row[k], sl] = logits.argmax(1) == y
                            if cond.group == "clean":
                                clean_logits[k].append(logits.float())
                for k in scored:
                    row[k] += 1
    return {
        k: ModelEval(cells[k], correct[k].cpu(), torch.cat(clean_logits[k]).cpu() if clean_logits[k] else torch.empty(0))
        for k in models
    }
