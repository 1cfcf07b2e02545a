"""Gradient-masking checks (Carlini et al. 2019, "On evaluating adversarial robustness";
Athalye et al. 2018), computed for every attacked model from its per-example results and a few
probes on a subset of the evaluated examples.

Each check gives rows `check, eps, value, threshold, flagged, norm`; `flagged` means the robust
accuracy of that model should not be trusted as it stands. Accuracies and fractions are in
[0, 1] (0.03 = 3 points); `eps` and `norm` are empty for checks that do not depend on them. The
checks that compare attacks (1, 3, 4, 6) are made per norm: an L2 attack is only set against L2 ones.

1. iterative_vs_single_step: strongest iterative attack's accuracy minus FGSM's (> 0.01 flags):
   an iterative attack never does worse than one step unless its gradients mislead it.
2. unbounded: Linf PGD-CE accuracy at eps 0.5 on the subset (> 0.05 flags): with the whole image to
   change, every example should fall; if not, the attack is not finding the gradient.
3. loss_dependence: best cross-entropy attack's accuracy minus best margin attack's (cw, apgd dlr,
   apgd_t) (> 0.05 flags): the signature of a saturated softmax (defensive distillation); CE attacks
   are a little weaker than margin ones on any model, so the bar is a few points, not zero.
4. black_box_stronger: fraction of examples that survive every white-box attack but fall to a
   black-box one (square, transfer) (> 0.01 flags): queries beating gradients means masked gradients.
5. vanishing_gradient: fraction of correctly classified subset examples whose input gradient of
   the cross-entropy is zero or below float resolution (> 0.05 flags); with two informative
   rows, median_top1_probability and median_logit_margin (top-1 minus top-2 logit), never flagged.
6. more_steps_help: PGD-CE accuracy minus the same attack's with `steps_factor` times the steps,
   on the subset (> 0.03 flags): the attack had not converged.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from kdbench.util.budgets import EXAMPLES, STEPS
from kdbench.util.lazy import lazy
from kdbench.util.levels import level_str
from kdbench.util.strict import STRICT

torch = lazy("torch")
F = lazy("torch.nn.functional")
evaluation = lazy("kdbench.evaluation.evaluate")

if TYPE_CHECKING:
    from kdbench.evaluation.evaluate import ModelEval

THRESHOLDS = {
    "iterative_vs_single_step": 0.01,
    "unbounded": 0.05,
    "loss_dependence": 0.05,
    "black_box_stronger": 0.01,
    "vanishing_gradient": 0.05,
    "more_steps_help": 0.03,
}
TINY = 2.0**-126  # float32's smallest normal number, torch.finfo(torch.float32).tiny


class DiagnosticsParams(BaseModel):
    model_config = STRICT
    enabled: bool = Field(True, description="run the gradient-masking checks on every attacked model")
    subset: Annotated[int, EXAMPLES] = Field(
        200,
        ge=1,
        description="examples (the first of the evaluated ones) for the probes: unbounded, gradients, more steps",
    )
    unbounded_eps: float = Field(0.5, gt=0, le=1, description="the 'unbounded' PGD radius")
    unbounded_steps: Annotated[int, STEPS] = Field(20, ge=1)
    steps_factor: int = Field(10, ge=2, le=100, description="more_steps_help: PGD with this many times the steps")


def _row(check, eps, value, threshold=None, norm: str = "") -> dict:
    flagged = threshold is not None and not math.isnan(value) and value > threshold + 1e-12  # 6/200 is not above 0.03
    return {
        "check": check,
        "eps": level_str(eps),
        "value": float(value),
        "threshold": math.nan if threshold is None else threshold,
        "flagged": bool(flagged),
        "norm": norm,
    }


def _check(check, eps, value, norm: str = "") -> dict:
    return _row(check, eps, value, THRESHOLDS[check], norm)


def from_results(result: ModelEval, kinds: dict[str, str]) -> list[dict]:
    """Checks 1, 3 and 4 from the per-example attack rows, per norm and epsilon; `kinds` maps an
    attack's condition name to its kind (single_step, ce, margin, black_box, composite)."""
    rows = []
    attack = [(i, c) for i, c in enumerate(result.cells) if c.group == "attack" and c.condition in kinds]
    correct = result.correct
    for norm, eps_str in dict.fromkeys(evaluation.threat(c) for _, c in attack):
        at = [(i, c, kinds[c.condition]) for i, c in attack if evaluation.threat(c) == (norm, eps_str)]
        # attacks scored on fewer examples are compared on the examples every one of them covers
        m = min(result.counts[i] for i, _, _ in at) if result.counts else correct.shape[1]
        acc = {c.condition: float(correct[i, :m].double().mean()) for i, c, _ in at}
        by_kind = lambda *ks: [c.condition for _, c, k in at if k in ks]  # noqa: E731
        single, iterative = by_kind("single_step"), by_kind("ce", "margin", "composite")
        if single and iterative:
            gap = min(acc[a] for a in iterative) - min(acc[a] for a in single)
            rows.append(_check("iterative_vs_single_step", eps_str, gap, norm))
        ce, margin = by_kind("ce"), by_kind("margin")
        if ce and margin:
            rows.append(_check("loss_dependence", eps_str, min(acc[a] for a in ce) - min(acc[a] for a in margin), norm))
        black = [i for i, _, k in at if k == "black_box"]
        white = [i for i, _, k in at if k != "black_box"]
        if black and white:
            survive_white = correct[white, :m].all(0)
            fall_black = ~correct[black, :m].all(0)
            rows.append(
                _check("black_box_stronger", eps_str, float((survive_white & fall_black).double().mean()), norm)
            )
    return rows


def _pgd_accuracy(model, x, y, eps, steps, step_size, seed, norm: str = "Linf") -> float:
    from kdbench.evaluation.conditions.attack import Starts, pgd_steps

    ce = lambda logits, t: F.cross_entropy(logits, t, reduction="none")  # noqa: E731
    if norm == "L2":  # a point of the unit L2 ball per example, as the L2 attacks start
        start = Starts((seed,), torch.arange(len(x)), "L2").in_ball(x)
    else:
        g = torch.Generator(device=x.device).manual_seed(seed)
        start = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype) * 2 - 1
    x_adv = pgd_steps(model, x, y, eps, step_size, steps, ce, start, norm)
    with torch.inference_mode():
        clean_ok = model(x).argmax(1) == y
        return float(((model(x_adv).argmax(1) == y) & clean_ok).double().mean())


def probes(model, x, y, result: ModelEval, pgd: list, params: DiagnosticsParams, seed: int) -> list[dict]:
    """Checks 2, 5 and 6 on the first `params.subset` examples `x`, `y` (floats in [0, 1]); check 6
    for each PGD condition in `pgd` (one per norm)."""
    from kdbench.util.seeding import derive_seed

    rows = []
    n = len(x)
    eps = params.unbounded_eps
    rows.append(
        _check(
            "unbounded",
            "",
            _pgd_accuracy(
                model,
                x,
                y,
                eps,
                params.unbounded_steps,
                2.5 * eps / params.unbounded_steps,
                derive_seed(seed, "unbounded"),
            ),
        )
    )
    x_req = x.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_req)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x_req)
    logits = logits.detach().float()
    ok = logits.argmax(1) == y
    vanished = grad.flatten(1).abs().amax(1) < TINY
    frac = float(vanished[ok].double().mean()) if bool(ok.any()) else math.nan
    rows.append(_check("vanishing_gradient", "", frac))
    top2 = logits.topk(min(2, logits.shape[1]), dim=1).values
    rows.append(_row("median_top1_probability", "", float(F.softmax(logits, 1).amax(1).median())))
    rows.append(_row("median_logit_margin", "", float((top2[:, 0] - top2[:, -1]).median())))
    for attack in pgd:
        p = attack.params
        for level in attack.levels():
            r = result.cells.index(evaluation.Cell(attack.name, attack.group, level))
            base = float(result.correct[r, :n].double().mean())
            longer = p.model_copy(update={"steps": p.steps * params.steps_factor})
            # the Linf key as it always was, so that existing checks keep their numbers
            key = ("more_steps", float(level)) if p.norm == "Linf" else ("more_steps", p.norm, float(level))
            more = _pgd_accuracy(model, x, y, level, longer.steps, longer.alpha(level), derive_seed(seed, *key), p.norm)
            rows.append(_check("more_steps_help", level, base - more, p.norm))
    return rows


def diagnose(model, images, labels, result: ModelEval, conditions, params: DiagnosticsParams, seed: int) -> list[dict]:
    """Every check for one model; [] when it was not attacked."""
    if not params.enabled or not any(c.group == "attack" for c in result.cells):
        return []
    attacked = {c.condition for c in result.cells if c.group == "attack"}
    kinds = {c.name: c.kind for c in conditions if c.name in attacked and hasattr(c, "kind")}
    pgd = [c for c in conditions if type(c).name == "pgd" and c.name in attacked]
    covered = [k for c, k in zip(result.cells, result.counts) if c.group == "attack"]
    n = min(params.subset, len(images), *covered)  # the probes compare with the attack rows' examples
    return from_results(result, kinds) + probes(model, images[:n], labels[:n], result, pgd, params, seed)


def flagged_summary(diagnostics) -> list[str]:
    """One line per flagged (model, seed, check), for the end of `kdbench run` and the report."""
    if diagnostics is None or len(diagnostics) == 0:
        return []
    d = diagnostics[diagnostics["flagged"].astype(bool)]
    return [
        f"{r.model} seed {r.seed}: {r.check}"
        + (f" at eps {r.eps}" if r.eps else "")
        + f" = {r.value:.3f} > {r.threshold:g}"
        for r in d.itertuples(index=False)
    ]
