"""One evaluation loop. Each model-independent condition (clean, noise, corruptions) perturbs a
batch once and every model scores it; an attack runs per model (AutoAttack once on the whole set,
as its reference implementation batches by itself). Correctness stays on the device until the
end, so scoring adds little to the bare forward passes.

A condition with its own `n` scores the first n examples of the evaluation order (which begins
with that class-stratified subset): its rows are False past them, its logits NaN, and `counts`
says how many each row covers.

Attack rows follow RobustBench's convention: an example is robust only if it is classified
correctly on the clean image and under the attack. Each norm and epsilon also gets a derived
`worst_case` row (`worst_case_l2` under L2): correct only if correct under every attack run at that
norm and epsilon.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from kdbench.evaluation.conditions import Condition
from kdbench.evaluation.model_eval import Cell, ModelEval
from kdbench.util.contracts import check_images
from kdbench.util.levels import level_str
from kdbench.util.names import WORST_CASE, attack_condition, norm_of
from kdbench.util.progress import bar
from kdbench.util.progress import enabled as progress_enabled

FLOAT_SET_BUDGET_BYTES = 2**30  # the most memory a whole test set converted to floats may take at once


def cells_of(conditions: list[Condition]) -> list[Cell]:
    return [Cell(c.name, c.group, level) for c in conditions for level in c.levels()]


def threat(cell: Cell) -> tuple[str, str]:
    """(norm, epsilon as stored): the attack cells one worst case is taken over."""
    return norm_of(cell.condition), level_str(cell.level)


def worst_case_cells(cells: list[Cell]) -> list[Cell]:
    """One worst-case cell per attack norm and epsilon, in the order they first appear."""
    first: dict[tuple[str, str], object] = {}
    for c in cells:
        if c.group == "attack":
            first.setdefault(threat(c), c.level)
    return [Cell(attack_condition(WORST_CASE, norm), "attack", level) for (norm, _), level in first.items()]


def robust_convention(
    cells: list[Cell], correct: torch.Tensor, counts: list[int]
) -> tuple[list[Cell], torch.Tensor, list[int]]:
    """Attack rows AND the clean row (in place), then the worst-case rows (the AND of every attack
    row at a norm and epsilon, over the examples all of them cover) appended: the cells, the
    correctness and the counts with them."""
    clean = [i for i, c in enumerate(cells) if c.group == "clean"]
    attack = [i for i, c in enumerate(cells) if c.group == "attack"]
    if clean and attack:
        correct[attack] &= correct[clean[0]]
    worst_cells = worst_case_cells(cells)
    members = [[i for i in attack if threat(cells[i]) == threat(w)] for w in worst_cells]
    worst = [correct[rows].all(0) for rows in members]
    worst_counts = [min(counts[i] for i in rows) for rows in members]
    for w, k in zip(worst, worst_counts):
        w[k:] = False
    return (
        cells + worst_cells,
        torch.cat([correct, torch.stack(worst)]) if worst else correct,
        counts + worst_counts,
    )


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
    sources: dict[str, dict[str, nn.Module]] | None = None,
    names: dict[str, str] | None = None,
    saliency: int = 0,
    references: dict[str, list[nn.Module]] | None = None,
    log=None,
) -> dict[str, ModelEval]:
    """Score every model under every condition on the uint8 `images` (N, 3, H, W).

    `only` limits a model to some condition names (clean is always scored); `sources[model][condition]`
    is the model a transfer attack crafts on (a model without one is not scored under it);
    `names` labels models in progress bars; `saliency`: the first this many examples keep each model's
    input gradient of the true-class logit (from the clean forward pass, which it then makes with
    gradients: the logits are the same); `references[model]`: teachers run on the model's own
    adversarial examples (their seconds are `teacher_on_adversarial` in `attack_seconds`); `log`
    gets a line per batch and per whole-set attack where there are no progress bars (a CI log
    stays alive)."""
    log = log if log is not None and not progress_enabled() else (lambda _: None)
    began = time.perf_counter()
    wants = {k: None if only is None or k not in only else set(only[k]) | {"clean"} for k in models}
    sources = sources or {}
    names = names or {k: k for k in models}

    def scores(k: str, cond: Condition) -> bool:
        if getattr(cond, "needs_source", False) and sources.get(k, {}).get(type(cond).name) is None:
            return False
        # the registered name: a corruption object is named for its corruption ("gaussian_noise"),
        # which must not let `only: [gaussian_noise]` (the noise condition) pull in corruptions
        return wants[k] is None or type(cond).name in wants[k]

    cells = {k: cells_of([c for c in conditions if scores(k, c)]) for k in models}
    n = len(images)
    references = {k: v for k, v in (references or {}).items() if v}
    for m in [*models.values(), *(t for ts in references.values() for t in ts)]:
        m.to(device).eval().requires_grad_(False)  # attacks need input gradients only
    correct = {k: torch.zeros(len(cells[k]), n, dtype=torch.bool, device=device) for k in models}
    logits: dict[str, dict[int, list[torch.Tensor]]] = {k: {} for k in models}  # model -> cell row -> batches
    source_correct: dict[str, dict[int, list[torch.Tensor]]] = {k: {} for k in models}
    seconds: dict[str, dict[str, float]] = {k: {} for k in models}
    labels_d = labels.to(device)
    # Converted once, then sliced: a fresh buffer per batch costs a cheap model a quarter of its time.
    # Conditions must not write into their input (the clean batch is shared by all of them).
    # A set whose floats would pass FLOAT_SET_BUDGET_BYTES (ImageNet's) is converted batch by batch instead:
    # the same values, without a second copy of the whole set.
    whole = images.numel() * 4 <= FLOAT_SET_BUDGET_BYTES
    floats = images.to(device).float().div_(255) if whole else None

    def as_floats(sl: slice) -> torch.Tensor:
        return floats[sl] if whole else images[sl].to(device).float().div_(255)

    checked: set[str] = set()  # the conditions whose first output has been looked at

    def first_output(cond, x_new, x) -> None:
        if cond.name not in checked:
            checked.add(cond.name)
            check_images(x_new, x, f"condition '{cond.name}'", cond)

    def run_attack(k, cond, x, y, idx, level):
        start = time.perf_counter()
        x_adv = cond.attack(models[k], x, y, idx, level, source=sources.get(k, {}).get(type(cond).name))
        first_output(cond, x_adv, x)
        if x_adv.is_cuda:
            torch.cuda.synchronize(x_adv.device)
        seconds[k][cond.name] = seconds[k].get(cond.name, 0.0) + time.perf_counter() - start
        return x_adv

    reference_logits: dict[str, dict[int, list[torch.Tensor]]] = {k: {} for k in models}

    def score(k: str, x_adv, y, row: int) -> torch.Tensor:
        with torch.inference_mode():
            z = models[k](x_adv)
        logits[k].setdefault(row, []).append(z.float())  # calibration under attack; no sync per batch
        if k in references:
            start = time.perf_counter()
            with torch.inference_mode():
                z_t = torch.stack([t(x_adv).float() for t in references[k]])
            if z_t.is_cuda:
                torch.cuda.synchronize(z_t.device)
            reference_logits[k].setdefault(row, []).append(z_t)
            spent = seconds[k].get("teacher_on_adversarial", 0.0) + time.perf_counter() - start
            seconds[k]["teacher_on_adversarial"] = spent
        return z.argmax(1) == y

    grads: dict[str, list[torch.Tensor]] = {k: [] for k in models}

    def clean_with_saliency(k: str, x, y, keep: int) -> torch.Tensor:
        """The clean logits, and the input gradients of the first `keep` examples, from one forward
        pass where the whole batch is kept (a pass with gradients gives the logits of one without)."""
        x_req = x[:keep].clone().requires_grad_(True)
        with torch.enable_grad():
            z = models[k](x_req)
            (g,) = torch.autograd.grad(z.gather(1, y[:keep, None]).sum(), x_req)
        grads[k].append(g.detach())
        if keep >= len(x):
            return z.detach()
        with torch.inference_mode():
            return models[k](x)

    per_batch = [c for c in conditions if not getattr(c, "whole_set", False)]
    progress = bar(range(0, n, batch_size), desc=f"evaluate {len(models)} model(s)")
    batches = -(-n // batch_size)
    for b, start in enumerate(progress):
        for cond in per_batch:
            # a condition with fewer examples takes the batch's part of its prefix, or nothing
            stop = min(start + batch_size, cond.limit(n))
            scored = [k for k in models if scores(k, cond)]
            if stop <= start or not scored:
                continue
            sl = slice(start, stop)
            x = as_floats(sl)
            y, idx = labels_d[sl], indices[sl]
            progress.set_postfix_str(cond.name, refresh=False)
            for level in cond.levels():
                rows = {k: cells[k].index(Cell(cond.name, cond.group, level)) for k in scored}
                if cond.model_dependent:
                    for k in scored:
                        x_adv = run_attack(k, cond, x, y, idx, level)
                        correct[k][rows[k], sl] = score(k, x_adv, y, rows[k])
                        source = (
                            sources.get(k, {}).get(type(cond).name) if getattr(cond, "needs_source", False) else None
                        )
                        if source is not None:
                            with torch.inference_mode():
                                source_correct[k].setdefault(rows[k], []).append(source(x_adv).argmax(1) == y)
                else:
                    with torch.inference_mode():
                        xp = cond.perturb(x, y, idx, level)
                    first_output(cond, xp, x)
                    for k in scored:
                        if type(cond).name == "clean" and start < saliency:
                            z = clean_with_saliency(k, x, y, saliency - start)
                        else:
                            with torch.inference_mode():
                                z = models[k](xp)
                        correct[k][rows[k], sl] = z.argmax(1) == y
                        # stays on the device: no sync per batch
                        logits[k].setdefault(rows[k], []).append(z.float())
        log(f"  evaluated batch {b + 1}/{batches} of {len(models)} model(s) ({time.perf_counter() - began:.0f} s)")
    # Whole-set attacks: every example they score at once, per model and level.
    for cond in conditions:
        if cond in per_batch:
            continue
        cond.batch_size = batch_size
        m = cond.limit(n)
        for k in models:
            if not scores(k, cond):
                continue
            for level in cond.levels():
                r = cells[k].index(Cell(cond.name, cond.group, level))
                for _ in bar([0], desc=f"{cond.name} {names[k]} eps={level_str(level)}"):
                    x_adv = run_attack(k, cond, as_floats(slice(0, m)), labels_d[:m], indices[:m], level)
                log(f"  {cond.name} on {names[k]} at eps {level_str(level)} done ({time.perf_counter() - began:.0f} s)")
                for s in range(0, m, batch_size):
                    e = min(s + batch_size, m)
                    correct[k][r, s:e] = score(k, x_adv[s:e], labels_d[s:e], r)
    limits = {(c.name, c.group): c.limit(n) for c in conditions}
    out = {}
    for k in models:
        covered = [limits[c.condition, c.group] for c in cells[k]]
        all_cells, full, counts = robust_convention(cells[k], correct[k], covered)
        rows = sorted(logits[k])
        stacked = torch.stack([_padded(torch.cat(logits[k][r]), n) for r in rows]).cpu() if rows else torch.empty(0)
        src = {r: _padded(torch.cat(b), n, False).cpu() for r, b in source_correct[k].items()}
        sal = torch.cat(grads[k]).cpu() if grads[k] else torch.zeros((0, *images.shape[1:]))
        refs = {r: _padded(torch.cat(b, dim=1), n, dim=1).cpu() for r, b in reference_logits[k].items()}
        out[k] = ModelEval(
            all_cells,
            full.cpu(),
            stacked,
            rows,
            {c: round(s, 3) for c, s in seconds[k].items()},
            src,
            sal,
            refs,
            counts,
        )
    return out


def _padded(t: torch.Tensor, n: int, fill=float("nan"), dim: int = 0) -> torch.Tensor:
    """`t` extended along `dim` to `n` entries with `fill` (a condition scored on a prefix)."""
    short = n - t.shape[dim]
    if not short:
        return t
    shape = list(t.shape)
    shape[dim] = short
    return torch.cat([t, torch.full(shape, fill, dtype=t.dtype, device=t.device)], dim=dim)
