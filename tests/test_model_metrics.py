"""Calibration and fidelity metrics against hand calculations."""

import math

import pytest
import torch

from kdbench.evaluation.model_metrics import MODEL_METRICS

# four examples, two classes: probabilities picked away from the 15 ECE bin edges
P = [(0.93, 0.07), (0.93, 0.07), (0.62, 0.38), (0.29, 0.71)]
Y = torch.tensor([0, 1, 0, 1])
LOGITS = torch.tensor([[math.log(a), math.log(b)] for a, b in P], dtype=torch.float64)


def metric(name, *args, **kw):
    """The metric's value; for one that is a mean over examples, also that its per-example values average to it."""
    m = MODEL_METRICS.get(name)
    value, per = m.values(*args, **kw)
    if m.per_example:
        assert per.shape == (len(args[0]),) and per.astype(float).mean() == pytest.approx(value, rel=1e-6)
    return value


def test_nll_brier_and_ece_by_hand():
    assert metric("nll", LOGITS, Y) == pytest.approx(
        -(math.log(0.93) + math.log(0.07) + math.log(0.62) + math.log(0.71)) / 4, rel=1e-12
    )
    brier = (2 * 0.07**2 + 2 * 0.93**2 + 2 * 0.38**2 + 2 * 0.29**2) / 4
    assert metric("brier", LOGITS, Y) == pytest.approx(brier, rel=1e-12)
    # bins (13/15, 14/15]: two examples, one right, confidence 0.93; (9/15, 10/15]: 0.62, right;
    # (10/15, 11/15]: 0.71 (class 1), right
    ece = 2 / 4 * abs(0.5 - 0.93) + 1 / 4 * abs(1 - 0.62) + 1 / 4 * abs(1 - 0.71)
    assert metric("ece", LOGITS, Y) == pytest.approx(ece, rel=1e-12)


def test_saliency_cosines_by_hand():
    student = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]], [[0.0, 0.0]]])  # (n=3, 1, 2): the third is all zero
    t1 = torch.tensor([[[1.0, 0.0]], [[-1.0, -1.0]], [[1.0, 2.0]]])
    t2 = torch.tensor([[[0.0, 3.0]], [[2.0, 0.0]], [[1.0, 0.0]]])
    # cosines with t1: 1, -1, 0 (zero gradient); with t2: 0, 1/sqrt(2), 0; an ensemble: their mean per example
    want = [(1 + 0) / 2, (-1 + 1 / math.sqrt(2)) / 2, 0.0]
    assert metric("saliency_teacher", student, [t1, t2]) == pytest.approx(sum(want) / 3, rel=1e-12)
    assert metric("saliency_twin", student, t1) == pytest.approx(0.0, abs=1e-12)  # (1 - 1 + 0) / 3


def test_transfer_rate_by_hand():
    student_right = torch.tensor([True, False, False, True])
    source_right = torch.tensor([False, False, True, False])  # the source resisted example 2: not counted
    value, per = MODEL_METRICS.get("transfer_rate").values(student_right, source_right)
    assert value == pytest.approx(1 / 3) and math.isnan(per[2]) and per[[0, 1, 3]].tolist() == [0.0, 1.0, 0.0]


def test_confidence_is_the_mean_top1_probability():
    assert metric("confidence", LOGITS, Y) == pytest.approx((0.93 + 0.93 + 0.62 + 0.71) / 4, rel=1e-12)


def test_a_perfectly_calibrated_model_has_zero_ece():
    logits = torch.tensor([[math.log(0.8), math.log(0.2)]] * 5, dtype=torch.float64)
    assert metric("ece", logits, torch.tensor([0, 0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-12)


def test_agreement_and_kl_to_the_teacher_by_hand():
    teacher = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.45, 0.55], [0.1, 0.9]], dtype=torch.float64)
    log_t = teacher.log()
    assert metric("agreement", LOGITS, Y, log_t) == pytest.approx(2 / 4)  # teacher 1, 0, 1, 1; student 0, 0, 0, 1
    kl = sum(sum(t * math.log(t / s) for t, s in zip(tr, sr)) for tr, sr in zip(teacher.tolist(), P)) / 4
    assert metric("kl_teacher", LOGITS, Y, log_t) == pytest.approx(kl, rel=1e-12)
    # at T = 2 both sides are softened: the teacher's log-probabilities come at T already
    t2 = torch.log_softmax(log_t / 2, dim=1)
    s2 = [[math.exp(v) for v in row] for row in torch.log_softmax(LOGITS / 2, dim=1).tolist()]
    kl2 = sum(sum(t * math.log(t / s) for t, s in zip(tr, sr)) for tr, sr in zip(t2.exp().tolist(), s2)) / 4
    assert metric("kl_teacher", LOGITS, Y, t2, temperature=2.0) == pytest.approx(kl2, rel=1e-12)


def test_the_registry_says_what_each_metric_is():
    kinds = {name: (m.kind, m.lower_is_better, m.per_example) for name, m in MODEL_METRICS.items()}
    assert kinds == {
        "nll": ("calibration", True, True),
        "brier": ("calibration", True, True),
        "confidence": ("calibration", None, True),
        "ece": ("calibration", True, False),
        "agreement": ("fidelity", False, True),
        "kl_teacher": ("fidelity", True, True),
        "saliency_teacher": ("saliency", False, True),
        "saliency_twin": ("saliency", False, True),
        "transfer_rate": ("transfer", True, True),
    }
    assert all(m.doc for _, m in MODEL_METRICS.items())


# ------------------------------------------------------------------ per-example values in a run
def _run_with_model_metrics(tmp_path, shift: float = 0.05):
    """A fake run (3 seeds) whose model_metrics carry per-example NLL and confidence, the kd
    student's NLL lower by `shift` on average, and a descriptive ECE."""
    import numpy as np
    import pandas as pd
    from fakerun import fake_results

    from kdbench.results.write import write_run

    p = fake_results(n=300, seeds=(0, 1, 2))
    rng = np.random.default_rng(5)
    rows, values = [], {}
    for model, role, method in (("resnet20-baseline", "baseline", "baseline"), ("resnet20-kd", "distilled", "kd")):
        for seed in (0, 1, 2):
            base = dict(
                model=model,
                role=role,
                method=method,
                arch="resnet20",
                seed=seed,
                condition="clean",
                group="clean",
                level="",
                n=300,
                reference="",
                temperature=float("nan"),
            )
            nll = rng.gamma(2.0, 0.4, 300) - (shift if role == "distilled" else 0.0)
            conf = rng.uniform(0.3, 1.0, 300)
            for metric, v in (("nll", nll), ("confidence", conf)):
                values[len(rows)] = v.astype("float32")
                rows.append(base | dict(metric=metric, value=float(v.astype("float32").astype(float).mean())))
            rows.append(base | dict(metric="ece", value=0.1 + 0.01 * seed))
    mm = pd.DataFrame(rows)
    path = write_run(
        tmp_path / "run",
        p.manifest,
        p.metrics,
        p.example_index,
        p.correct,
        p.agreement,
        model_metrics=mm,
        model_metric_values=values,
    )
    return path, mm, values


def test_the_report_tests_per_example_metrics_as_it_tests_accuracy(tmp_path):
    import numpy as np

    from kdbench.analysis import stats
    from kdbench.reports.calibration import calibration_rows, calibration_table
    from kdbench.results.read import read_run

    path, mm, values = _run_with_model_metrics(tmp_path)
    run = read_run(path)
    assert set(run.model_metric_values) == set(values) and np.array_equal(run.model_metric_values[0], values[0])
    t = calibration_table(run, "resnet20-baseline", "resnet20-kd")
    nll = t[t.metric == "nll"].iloc[0]

    def pick(model):
        return np.stack([values[i] for i in mm.index[(mm.model == model) & (mm.metric == "nll")]]).astype(float)

    want = stats.method_test_paired(pick("resnet20-baseline"), pick("resnet20-kd"))  # seeds 0, 1, 2 with 0, 1, 2
    assert nll.p == pytest.approx(want.pvalue, rel=1e-9) and (nll.ci_lo, nll.ci_hi) == pytest.approx(want.ci, rel=1e-9)
    assert nll["diff"] == pytest.approx(want.difference, abs=1e-6)
    assert math.isnan(t[t.metric == "ece"].iloc[0].p)  # no per-example form: descriptive
    # Holm over the table's tested rows, by hand: sorted p times (m - rank), running maximum, capped at 1
    tested = t[~t.p.isna()]
    m, order = len(tested), np.argsort(tested.p.to_numpy(), kind="stable")
    by_hand = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * tested.p.to_numpy()[order]))
    assert m >= 2 and tested.p_holm.to_numpy()[order] == pytest.approx(by_hand, rel=1e-12)
    assert (tested.p_holm >= tested.p).all() and t[t.p.isna()].p_holm.isna().all()
    shown = {r["metric"]: r for r in calibration_rows(run, "resnet20-baseline", "resnet20-kd")}
    assert (
        shown["nll"]["p"] != "—"
        and shown["nll"]["ci"].startswith("[")
        and shown["ece"]["p"] == "—" == shown["ece"]["p_holm"]
    )
    assert shown["nll"]["p_holm"] != "—"


def test_per_example_values_that_do_not_match_the_csv_are_refused(tmp_path):
    import numpy as np

    from kdbench.results.contract import ResultsError
    from kdbench.results.read import read_run

    path, _, _ = _run_with_model_metrics(tmp_path)
    with np.load(path / "model_metrics.npz") as z:
        row, vals = z["row"], z["values"]
    np.savez_compressed(path / "model_metrics.npz", row=row, values=vals + 0.5)
    with pytest.raises(ResultsError, match="model_metrics.npz.*do not average"):
        read_run(path)


def test_reliability_bins_and_diagram(tmp_path):
    import numpy as np

    from kdbench.evaluation.model_metrics.calibration import reliability_bins
    from kdbench.reports import plots
    from kdbench.reports.tables import build
    from kdbench.results.checks import load_run

    conf, acc, count = (t.numpy() for t in reliability_bins([0.05, 0.06, 0.5, 0.52, 0.99], [0, 1, 1, 1, 0], bins=15))
    # bins (0, 1/15]: 0.05, 0.06; (7/15, 8/15]: 0.5, 0.52; (14/15, 1]: 0.99
    assert count.tolist() == [2, 2, 1] and acc.tolist() == [0.5, 1.0, 0.0]
    assert conf == pytest.approx([0.055, 0.51, 0.99])
    path, _, _ = _run_with_model_metrics(tmp_path)
    data = build(load_run(path))
    (pair,) = [p for p in data.pairs if p.distilled == "resnet20-kd"]
    assert plots.reliability_plot(data, pair).startswith("data:image/svg+xml;base64,")
    from kdbench.reports.html import render_html
    from kdbench.reports.markdown import render_markdown

    md = render_markdown(data)
    assert (
        "| metric | data | baseline | distilled | Δ | 95% CI | p | p Holm |"
        in md.split("### Calibration and fidelity")[1]
    )
    assert "<th>p</th><th>p Holm</th>" in render_html(data)
    data.run.model_metric_values = None  # a run written before model_metrics.npz
    assert plots.reliability_plot(data, pair) is None
    assert np.isfinite(conf).all()
