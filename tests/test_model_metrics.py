"""Calibration and fidelity metrics against hand calculations."""

import math

import pytest
import torch

from bench.model_metrics import MODEL_METRICS

# four examples, two classes: probabilities picked away from the 15 ECE bin edges
P = [(0.93, 0.07), (0.93, 0.07), (0.62, 0.38), (0.29, 0.71)]
Y = torch.tensor([0, 1, 0, 1])
LOGITS = torch.tensor([[math.log(a), math.log(b)] for a, b in P], dtype=torch.float64)


def metric(name, *args, **kw):
    return MODEL_METRICS.get(name).fn(*args, **kw)


def test_nll_brier_and_ece_by_hand():
    assert metric("nll", LOGITS, Y) == pytest.approx(-(math.log(0.93) + math.log(0.07) + math.log(0.62) + math.log(0.71)) / 4, rel=1e-12)
    brier = (2 * 0.07**2 + 2 * 0.93**2 + 2 * 0.38**2 + 2 * 0.29**2) / 4
    assert metric("brier", LOGITS, Y) == pytest.approx(brier, rel=1e-12)
    # bins (13/15, 14/15]: two examples, one right, confidence 0.93; (9/15, 10/15]: 0.62, right;
    # (10/15, 11/15]: 0.71 (class 1), right
    ece = 2 / 4 * abs(0.5 - 0.93) + 1 / 4 * abs(1 - 0.62) + 1 / 4 * abs(1 - 0.71)
    assert metric("ece", LOGITS, Y) == pytest.approx(ece, rel=1e-12)


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
    kinds = {name: (m.kind, m.lower_is_better) for name, m in MODEL_METRICS.items()}
    assert kinds == {"nll": ("calibration", True), "brier": ("calibration", True), "ece": ("calibration", True),
                     "agreement": ("fidelity", False), "kl_teacher": ("fidelity", True)}
    assert all(m.doc for _, m in MODEL_METRICS.items())
