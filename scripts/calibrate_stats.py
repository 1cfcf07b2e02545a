"""Calibrate kdbench's statistics by simulation: false-positive rate, coverage, power and MDD.

Per-example correctness is drawn with the structure real benchmark runs have:
- example difficulty shared by every model and seed (a probit latent theta_i, sd 2: most
  examples are always right or always wrong, a minority flips between retrainings);
- a method-specific per-example effect gamma_(m,i) (sd 0.5): a distilled student and its baseline
  are right on partly different examples, the same way in every seed;
- a seed-level random effect per trained network, scaled so that a network's accuracy moves by
  0.25-1 pp between seeds (training randomness);
- then Bernoulli noise per (network, example).
Each replicate draws a new test set and new networks, so "the truth" is the population difference
(over examples and seeds), in closed form: E[Phi(X)] = Phi(mu / sqrt(1 + var X)) for normal X.

Printed, per seeds S, examples N and seed spread:
- report (headline): `method_test_paired` (seed k with seed k) and `method_test_unpaired`:
  rejection rate at 5% under the null (goal 3-7%), 95% interval coverage (goal 93-97%), power against
  a true 2 pp difference, median MDD (80% power); and the pooled McNemar test the report used
  before, for contrast;
- gate, same networks re-evaluated (evaluation noise only): the one-sided exact McNemar pooled over
  seed pairs: false-alarm rate, and power against a real 2 pp drop;
- gate, retrained (fresh seeds, the same recipe): the one-sided unpaired method test with the 1 pp
  tolerance: false-alarm rate, inconclusive rate (MDD above the tolerance), power against 2 pp.
One metric per replicate, so Holm's correction is the identity here.

    python scripts/calibrate_stats.py                 # the full grid, 2,000 replicates (~15 min on 2 cores)
    python scripts/calibrate_stats.py --reps 300 --seeds 3 5 --examples 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kdbench.analysis import mcnemar, stats

ACC = 0.85
SD_THETA, SD_GAMMA = 2.0, 0.5
TOLERANCE = 0.01
ALPHA = 0.05


def _scales(seed_sd_pp: float) -> tuple[float, float]:
    """(mu, sd of the seed effect) on the probit scale, for population accuracy ACC."""
    s0 = np.sqrt(SD_THETA**2 + SD_GAMMA**2)
    q = np.sqrt(1 + s0**2)
    density = np.exp(-0.5 * special.ndtri(ACC) ** 2) / np.sqrt(2 * np.pi) / q  # d accuracy / d shift
    sd_u = seed_sd_pp / 100 / density
    mu = special.ndtri(ACC) * np.sqrt(1 + s0**2 + sd_u**2)
    return float(mu), float(sd_u)


def shift_for(effect_pp: float, seed_sd_pp: float) -> float:
    """Probit shift that moves the population accuracy by effect_pp."""
    mu, sd_u = _scales(seed_sd_pp)
    q = np.sqrt(1 + SD_THETA**2 + SD_GAMMA**2 + sd_u**2)
    return float(special.ndtri(special.ndtr(mu / q) + effect_pp / 100) * q - mu)


def world(rng, s_a: int, s_b: int, n: int, seed_sd_pp: float, effect_pp: float = 0.0, same_method: bool = False):
    """(A, B): per-example correctness of s_a networks of method a and s_b of method b on one test set."""
    mu, sd_u = _scales(seed_sd_pp)
    theta = rng.normal(mu, SD_THETA, n)
    gamma_a = rng.normal(0, SD_GAMMA, n)
    gamma_b = gamma_a if same_method else rng.normal(0, SD_GAMMA, n)
    delta = shift_for(effect_pp, seed_sd_pp) if effect_pp else 0.0
    a = rng.random((s_a, n)) < special.ndtr(theta + gamma_a + rng.normal(0, sd_u, (s_a, 1)))
    b = rng.random((s_b, n)) < special.ndtr(theta + gamma_b + rng.normal(0, sd_u, (s_b, 1)) + delta)
    return a, b


def reevaluated(rng, s: int, n: int, seed_sd_pp: float, drop_pp: float = 0.0):
    """The same s networks scored twice; only evaluation noise differs (plus a real drop in the second)."""
    mu, sd_u = _scales(seed_sd_pp)
    p = special.ndtr(rng.normal(mu, SD_THETA, n) + rng.normal(0, SD_GAMMA, n) + rng.normal(0, sd_u, (s, 1)))
    base = rng.random((s, n)) < p
    run = rng.random((s, n)) < p
    if drop_pp:
        run &= ~(rng.random((s, n)) < drop_pp / 100 / ACC)
    return base, run


def cell(args) -> dict:
    s, n, sd, reps, seed = args
    rng = np.random.default_rng([seed, s, n, int(sd * 1000)])
    out = {
        k: 0
        for k in (
            "p_rej",
            "p_cov",
            "p_pow",
            "u_rej",
            "u_cov",
            "u_pow",
            "pooled_rej",
            "same_fa",
            "same_pow",
            "re_fa",
            "re_inc",
            "re_pow",
        )
    }
    mdd_p, mdd_u = [], []
    for _ in range(reps):
        # report, null and 2 pp
        a, b = world(rng, s, s, n, sd)
        tp, tu = stats.method_test_paired(a, b), stats.method_test_unpaired(a, b)
        out["p_rej"] += tp.pvalue < ALPHA
        out["p_cov"] += tp.ci[0] <= 0 <= tp.ci[1]
        out["u_rej"] += tu.pvalue < ALPHA
        out["u_cov"] += tu.ci[0] <= 0 <= tu.ci[1]
        out["pooled_rej"] += mcnemar.mcnemar_exact(a, b).pvalue < ALPHA
        mdd_p.append(tp.mdd)
        mdd_u.append(tu.mdd)
        a, b = world(rng, s, s, n, sd, effect_pp=2.0)
        out["p_pow"] += stats.method_test_paired(a, b).pvalue < ALPHA
        out["u_pow"] += stats.method_test_unpaired(a, b).pvalue < ALPHA
        # gate, same networks re-evaluated
        base, run = reevaluated(rng, s, n, sd)
        out["same_fa"] += (
            mcnemar.mcnemar_exact(base, run, "less").pvalue < ALPHA and run.mean() - base.mean() < -TOLERANCE
        )
        base, run = reevaluated(rng, s, n, sd, drop_pp=2.0)
        out["same_pow"] += (
            mcnemar.mcnemar_exact(base, run, "less").pvalue < ALPHA and run.mean() - base.mean() < -TOLERANCE
        )
        # gate, retrained with fresh seeds (same recipe)
        base, run = world(rng, s, s, n, sd, same_method=True)
        t = stats.method_test_unpaired(base, run, "less")
        regressed = t.pvalue < ALPHA and t.difference < -TOLERANCE
        out["re_fa"] += regressed
        out["re_inc"] += (not regressed) and t.mdd > TOLERANCE
        base, run = world(rng, s, s, n, sd, effect_pp=-2.0, same_method=True)
        t = stats.method_test_unpaired(base, run, "less")
        out["re_pow"] += t.pvalue < ALPHA and t.difference < -TOLERANCE
    res = {k: v / reps for k, v in out.items()}
    res.update(S=s, N=n, sd=sd, reps=reps, mdd_p=float(np.median(mdd_p)), mdd_u=float(np.median(mdd_u)))
    return res


HEADER = (
    f"{'N':>6} {'S':>3} {'sd':>5} | {'paired: FP':>10} {'cover':>6} {'pow2pp':>6} {'MDD':>6} | {'unpaired: FP':>12} "
    f"{'cover':>6} "
    f"{'pow2pp':>6} {'MDD':>6} | {'pooled McN FP':>13} | {'gate same: FA':>13} {'pow2pp':>6} | "
    f"{'gate retrained: FA':>18} {'inconcl':>7} {'pow2pp':>6}"
)


def line(r: dict) -> str:
    f = lambda k: f"{100 * r[k]:5.1f}%"  # noqa: E731
    return (
        f"{r['N']:>6} {r['S']:>3} {r['sd']:>5.2f} | {f('p_rej'):>10} {f('p_cov'):>6} {f('p_pow'):>6} "
        f"{100 * r['mdd_p']:5.2f} | "
        f"{f('u_rej'):>12} {f('u_cov'):>6} {f('u_pow'):>6} {100 * r['mdd_u']:5.2f} | {f('pooled_rej'):>13} | "
        f"{f('same_fa'):>13} {f('same_pow'):>6} | {f('re_fa'):>18} {f('re_inc'):>7} {f('re_pow'):>6}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 10])
    ap.add_argument("--examples", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--seed-sd", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="accuracy sd between seeds, pp")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    grid = [(s, n, sd, args.reps, args.seed) for n in args.examples for s in args.seeds for sd in args.seed_sd]
    t0 = time.perf_counter()
    print(
        f"{args.reps} replicates per cell; nominal level 5%; gate tolerance {100 * TOLERANCE:g} pp; MDD in pp (median)"
    )
    print("FP: rejection rate under the null (goal 3-7%); cover: 95% interval coverage (goal 93-97%); FA: false alarms")
    print(HEADER)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(cell, grid):
            print(line(r), flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
