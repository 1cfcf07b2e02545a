"""dkd, dist and kd_logit_std against their papers' formulas written out by hand (and DKD against the
authors' masking trick), and each trains."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdbench.training.methods import METHODS, build_method
from kdbench.training.methods.base import Batch, Teachers

ZS = [[1.0, 2.0, 0.5], [0.2, -1.0, 1.5]]
ZT = [[2.0, 1.0, -0.5], [0.0, 0.3, 2.5]]
Y = [1, 2]


def softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def run(name, epoch=1, **params):
    method = build_method(METHODS.get(name).Params(**params))

    def student(x):
        return x  # the "images" are the logits

    zs = torch.tensor(ZS, dtype=torch.float64)
    batch = Batch(zs, torch.tensor(Y), torch.arange(2), 0.0, epoch=epoch)
    _, losses = method.forward_train(student, Teachers(cached=torch.tensor([ZT], dtype=torch.float64)), batch)
    return {k: float(v) for k, v in losses.items()}


def ce(z, y):
    return -math.log(softmax(z)[y])


def test_dkd_by_hand_and_against_the_masking_trick():
    t, alpha, beta = 4.0, 1.0, 8.0
    tckd = nckd = 0.0
    for zs, zt, y in zip(ZS, ZT, Y):
        ps, pt = softmax(zs, t), softmax(zt, t)
        tckd += kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]]) / 2
        qs = [p / (1 - ps[y]) for c, p in enumerate(ps) if c != y]
        qt = [p / (1 - pt[y]) for c, p in enumerate(pt) if c != y]
        nckd += kl(qt, qs) / 2
    got = run("dkd", epoch=20)
    assert got["ce"] == pytest.approx(sum(ce(z, y) for z, y in zip(ZS, Y)) / 2, rel=1e-12)
    assert got["tckd"] == pytest.approx(alpha * t * t * tckd, rel=1e-10)
    assert got["nckd"] == pytest.approx(beta * t * t * nckd, rel=1e-10)
    # the authors' NCKD: softmax after subtracting 1000 from the target logit
    zs, zt = torch.tensor(ZS, dtype=torch.float64), torch.tensor(ZT, dtype=torch.float64)
    gt = F.one_hot(torch.tensor(Y), 3).double()
    trick = F.kl_div(F.log_softmax(zs / t - 1000 * gt, 1), F.softmax(zt / t - 1000 * gt, 1), reduction="sum") / 2
    assert got["nckd"] == pytest.approx(beta * t * t * float(trick), rel=1e-9)
    # the warm-up: epoch 5 of 20 weighs the DKD terms by 1/4, not the cross-entropy
    early = run("dkd", epoch=5)
    assert (
        early["tckd"] == pytest.approx(got["tckd"] / 4)
        and early["nckd"] == pytest.approx(got["nckd"] / 4)
        and early["ce"] == got["ce"]
    )


def test_dist_by_hand():
    tau = 2.0
    zs = [[1.0, 2.0, 0.5], [0.2, -1.0, 1.5], [3.0, 0.0, 0.1], [-0.5, 0.4, 0.9]]
    zt = [[2.0, 1.0, -0.5], [0.0, 0.3, 2.5], [1.0, 1.2, 0.0], [0.5, -0.4, 2.0]]
    ps, pt = np.array([softmax(z, tau) for z in zs]), np.array([softmax(z, tau) for z in zt])
    inter = 1 - np.mean([np.corrcoef(ps[i], pt[i])[0, 1] for i in range(4)])  # each example over classes
    intra = 1 - np.mean([np.corrcoef(ps[:, c], pt[:, c])[0, 1] for c in range(3)])  # each class over the batch
    method = build_method(METHODS.get("dist").Params(tau=tau, beta=1.0, gamma=2.0))
    got = method.losses(
        torch.tensor(zs, dtype=torch.float64), torch.tensor([zt], dtype=torch.float64), torch.tensor([0, 1, 2, 0]), 0.0
    )
    assert float(got["inter"]) == pytest.approx(tau**2 * inter, rel=1e-5)  # the authors' 1e-8 in the denominator
    assert float(got["intra"]) == pytest.approx(2.0 * tau**2 * intra, rel=1e-5)


def test_kd_logit_std_by_hand():
    t = 2.0

    def zscore(z):
        return [(v - statistics.mean(z)) / (1e-7 + statistics.stdev(z)) for v in z]

    want = sum(kl(softmax(zscore(zt), t), softmax(zscore(zs), t)) for zs, zt in zip(ZS, ZT)) / 2
    got = run("kd_logit_std")
    assert got["kd_std"] == pytest.approx(9.0 * t * t * want, rel=1e-10)
    assert got["ce"] == pytest.approx(0.1 * sum(ce(z, y) for z, y in zip(ZS, Y)) / 2, rel=1e-12)
    # standardised: scaling the teacher's logits changes nothing
    scaled = build_method(METHODS.get("kd_logit_std").Params())
    zs = torch.tensor(ZS, dtype=torch.float64)
    a = scaled.losses(zs, torch.tensor([ZT], dtype=torch.float64), torch.tensor(Y), 0.0)["kd_std"]
    b = scaled.losses(zs, 7.0 * torch.tensor([ZT], dtype=torch.float64) + 3.0, torch.tensor(Y), 0.0)["kd_std"]
    assert float(a) == pytest.approx(float(b), rel=1e-6)


@pytest.mark.parametrize("name", ["dkd", "dist", "kd_logit_std"])
def test_each_trains_with_a_teacher(name):
    from kdbench.config import TrainRecipe
    from kdbench.models import create_model, wrap
    from kdbench.training.loop import train

    g = torch.Generator().manual_seed(0)
    images, labels = (
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (64,), generator=g),
    )
    torch.manual_seed(0)
    teacher, student = wrap(create_model("cnn_tiny"), "cifar10").eval(), wrap(create_model("cnn_tiny"), "cifar10")
    history = train(
        student,
        images,
        labels,
        TrainRecipe(epochs=2, batch_size=32, lr=0.01),
        build_method(METHODS.get(name).Params()),
        0,
        teachers=[teacher],
    )
    assert len(history) == 2 and all(math.isfinite(v) for row in history for v in row.values())
    assert METHODS.get(name).role == "distilled" and METHODS.get(name).twin == "baseline"
