"""The losses against hand calculations in plain Python (math, no torch in the oracle)."""

import math

import pytest
import torch

from kdbench.models.soft_targets import TemperatureSchedule, temperature_at
from kdbench.training.methods import METHODS, build_method

S = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.2]]
T1 = [[3.0, 0.0, -2.0], [0.5, 2.5, 0.0]]
T2 = [[1.0, 1.0, 0.0], [-1.0, 3.0, 1.0]]
Y = [0, 2]


def softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def ce(z, y):
    return -math.log(softmax(z)[y])


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def mean(xs):
    return sum(xs) / len(xs)


def method(name, **params):
    cls = METHODS.get(name)
    ensemble = params.pop("ensemble", "mean_probs")
    return build_method(cls.Params(name=name, **params), ensemble=ensemble)


def run(m, teachers):
    t = None if teachers is None else torch.tensor(teachers)
    return {k: v.item() for k, v in m.losses(torch.tensor(S), t, torch.tensor(Y), 0.0).items()}


def test_baseline_is_cross_entropy():
    assert run(method("baseline"), None)["ce"] == pytest.approx(mean([ce(S[b], Y[b]) for b in range(2)]), rel=1e-6)


def test_label_smoothing_by_hand():
    eps, k = 0.2, 3
    expect = []
    for b in range(2):
        logp = [math.log(p) for p in softmax(S[b])]
        target = [eps / k + (1 - eps) * (i == Y[b]) for i in range(k)]
        expect.append(-sum(t * lp for t, lp in zip(target, logp)))
    assert run(method("label_smoothing", smoothing=eps), None)["ce_smoothed"] == pytest.approx(mean(expect), rel=1e-6)


@pytest.mark.parametrize("alpha,t", [(0.1, 4.0), (0.5, 1.0), (0.9, 2.5), (0.0, 8.0)])
def test_kd_single_teacher_by_hand(alpha, t):
    got = run(method("kd", alpha=alpha, temperature=t), [T1])
    hard = mean([ce(S[b], Y[b]) for b in range(2)])
    # batchmean: KL summed over classes, averaged over the batch; scaled by T^2
    soft = mean([kl(softmax(T1[b], t), softmax(S[b], t)) for b in range(2)])
    assert got["ce"] == pytest.approx(alpha * hard, rel=1e-6, abs=1e-9)
    assert got["kd"] == pytest.approx((1 - alpha) * t * t * soft, rel=1e-5)


def test_kd_t_squared_scaling_is_there():
    # Same KL, different weighting would not scale like this: compare T = 2 and T = 4 by hand.
    for t in (2.0, 4.0):
        got = run(method("kd", alpha=0.0, temperature=t), [T1])["kd"]
        soft = mean([kl(softmax(T1[b], t), softmax(S[b], t)) for b in range(2)])
        assert got / soft == pytest.approx(t * t, rel=1e-5)


def test_kd_ensemble_mean_probs_by_hand():
    t = 3.0
    got = run(method("kd", alpha=0.0, temperature=t, ensemble="mean_probs"), [T1, T2])["kd"]
    expect = []
    for b in range(2):
        p = [(a + c) / 2 for a, c in zip(softmax(T1[b], t), softmax(T2[b], t))]
        expect.append(kl(p, softmax(S[b], t)))
    assert got == pytest.approx(t * t * mean(expect), rel=1e-5)


def test_kd_ensemble_mean_logits_by_hand():
    t = 3.0
    got = run(method("kd", alpha=0.0, temperature=t, ensemble="mean_logits"), [T1, T2])["kd"]
    expect = []
    for b in range(2):
        z = [(a + c) / 2 for a, c in zip(T1[b], T2[b])]
        expect.append(kl(softmax(z, t), softmax(S[b], t)))
    assert got == pytest.approx(t * t * mean(expect), rel=1e-5)


def test_ensemble_modes_differ():
    a = run(method("kd", alpha=0.0, temperature=2.0, ensemble="mean_probs"), [T1, T2])["kd"]
    b = run(method("kd", alpha=0.0, temperature=2.0, ensemble="mean_logits"), [T1, T2])["kd"]
    assert a != pytest.approx(b, rel=1e-3)


def test_kd_mse_by_hand():
    alpha, t = 0.3, 4.0
    got = run(method("kd_mse", alpha=alpha, temperature=t), [T1])
    sq = mean([sum((ps - pt) ** 2 for ps, pt in zip(softmax(S[b], t), softmax(T1[b], t))) for b in range(2)])
    assert got["mse"] == pytest.approx((1 - alpha) * t * t * sq, rel=1e-5)
    assert got["ce"] == pytest.approx(alpha * mean([ce(S[b], Y[b]) for b in range(2)]), rel=1e-6)


def test_kd_gradient_vanishes_when_student_equals_teacher():
    s = torch.tensor(T1, requires_grad=True)
    loss = method("kd", alpha=0.0, temperature=4.0).losses(s, torch.tensor([T1]), torch.tensor(Y), 0.0)["kd"]
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    assert s.grad.abs().max().item() < 1e-6


@pytest.mark.parametrize(
    "schedule,expect",
    [("constant", [4.0, 4.0, 4.0]), ("linear", [4.0, 2.5, 1.0]), ("cosine", [4.0, 2.5, 1.0])],
)
def test_temperature_schedules(schedule, expect):
    s = TemperatureSchedule(schedule=schedule, start=4.0, end=1.0)
    assert [temperature_at(s, p) for p in (0.0, 0.5, 1.0)] == pytest.approx(expect)
    if schedule == "cosine":  # slower than linear at the start
        assert temperature_at(s, 0.25) > 4.0 - 3.0 * 0.25


def test_scheduled_kd_uses_the_temperature_of_its_progress():
    sched = {"schedule": "linear", "start": 4.0, "end": 1.0}
    m = method("kd", alpha=0.0, temperature=sched)
    at_end = m.losses(torch.tensor(S), torch.tensor([T1]), torch.tensor(Y), 1.0)["kd"].item()
    assert at_end == pytest.approx(mean([kl(softmax(T1[b], 1.0), softmax(S[b], 1.0)) for b in range(2)]), rel=1e-5)


# ------------------------------------------------------------------ the method owns the forward pass
def test_the_default_forward_pass_feeds_the_loss_from_the_cache_or_the_teachers():
    from kdbench.training.methods.base import Batch, Teachers

    torch.manual_seed(0)
    student, teacher = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x, y, index = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]), torch.tensor([7, 1, 3, 0, 9])
    kd = method("kd", alpha=0.3, temperature=2.0)
    cache = torch.zeros(1, 10, 3)
    with torch.no_grad():
        cache[0, index] = teacher(x)
    batch = Batch(x, y, index, 0.0)
    logits, from_cache = kd.forward_train(student, Teachers([teacher], cache), batch)
    _, from_teacher = kd.forward_train(student, Teachers([teacher]), batch)
    assert torch.equal(logits, student(x))
    expected = kd.losses(student(x), teacher(x).detach()[None], y, 0.0)
    for name in ("ce", "kd"):
        assert torch.allclose(from_cache[name], expected[name]) and torch.allclose(from_teacher[name], expected[name])
    _, base = method("baseline").forward_train(student, Teachers(), batch)  # no teacher asked for, none needed
    assert set(base) == {"ce"}


def test_a_method_that_overrides_the_forward_pass_is_what_training_runs():
    from kdbench.config import TrainRecipe
    from kdbench.training.loop import train
    from kdbench.training.methods.base import Method, MethodParams

    seen = []

    class Twice(Method):  # a toy method: the loss on the clean batch and on the batch flipped
        name, role = "twice", "control"

        def forward_train(self, student, teachers, batch):
            seen.append((tuple(batch.x.shape), round(batch.progress, 3)))
            logits = student(batch.x)
            flipped = student(batch.x.flip(-1))
            ce = torch.nn.functional.cross_entropy
            return logits, {"clean": ce(logits, batch.y), "flipped": 0.5 * ce(flipped, batch.y)}

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    images, labels = (torch.rand(20, 3, 8, 8) * 255).to(torch.uint8), torch.randint(0, 4, (20,))
    recipe = TrainRecipe(epochs=2, batch_size=8, optimizer="sgd", lr=0.1, schedule="constant", augment=False)
    history = train(net, images, labels, recipe, Twice(MethodParams(name="twice")), seed=0)
    assert seen == [((8, 3, 8, 8), 0.0)] * 2 + [((4, 3, 8, 8), 0.0)] + [((8, 3, 8, 8), 1.0)] * 2 + [((4, 3, 8, 8), 1.0)]
    assert set(history[0]) == {"epoch", "clean", "flipped", "train_accuracy", "lr"}
