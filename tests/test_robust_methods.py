"""The robust half: pgd_at, trades, ard and rslad against their papers' formulas by hand, the inner
attack against torchattacks' PGD, the twins' shared random starts, and the default compare pairs."""

import copy
import math

import pytest
import torch
import torchattacks
from torch import nn

from kdbench.config import Suite
from kdbench.models import create_model, wrap
from kdbench.training.methods import METHODS, build_method
from kdbench.training.methods.base import Batch, Teachers
from kdbench.training.methods.inner_attack import InnerAttack, KLInnerAttack, perturb
from kdbench.util.seeding import derive_seed

EPS = 8 / 255


# ------------------------------------------------------------------------------ losses by hand
def softmax(z, t=1.0):
    e = [math.exp(v / t - max(z) / t) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    """KL(p || q) = sum_c p_c log(p_c / q_c)."""
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def ce(z, y):
    return -math.log(softmax(z)[y])


def mean(xs):
    return sum(xs) / len(xs)


class Linear(nn.Module):
    """A student whose logits anyone can compute: z = W x (x flattened), no normalisation layers."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(
            torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.3, 0.2, -1.0, 2.0], [-0.5, 1.0, 1.0, -1.5]], dtype=torch.float64)
        )

    def forward(self, x):
        return x.flatten(1) @ self.w.T


X = torch.tensor([[0.1, 0.9, 0.4, 0.7], [0.8, 0.2, 0.6, 0.3]], dtype=torch.float64).view(2, 1, 2, 2)
X_ADV = X + torch.tensor([[0.03, -0.03, 0.03, 0.03], [-0.03, 0.03, 0.0, -0.03]], dtype=torch.float64).view(2, 1, 2, 2)
Y = torch.tensor([1, 0])
TEACHER = torch.tensor([[[0.5, 2.0, -1.0], [1.5, -0.5, 0.2]]], dtype=torch.float64)  # (K=1, B, C)


def logits_of(x):
    return [[sum(w * v for w, v in zip(row, xi)) for row in Linear().w.tolist()] for xi in x.flatten(1).tolist()]


@pytest.fixture
def fixed_attack(monkeypatch):
    """Every method's inner attack returns X_ADV; what it was asked to ascend is recorded."""
    seen = []

    def fake(student, x, target, loss_fn, spec, batch):
        seen.append((target, loss_fn, spec))
        return X_ADV.clone()

    for mod in ("pgd_at", "trades", "ard", "rslad"):
        monkeypatch.setattr(f"kdbench.training.methods.{mod}.perturb", fake)
    return seen


def step(name, **params):
    method = build_method(METHODS.get(name).Params(**params))
    logits, losses = method.forward_train(Linear(), Teachers(cached=TEACHER), Batch(X, Y, torch.arange(2), 0.0))
    return logits, {k: float(v.detach()) for k, v in losses.items()}


def test_pgd_at_is_cross_entropy_on_the_adversarial_images(fixed_attack):
    logits, losses = step("pgd_at")
    z_adv = logits_of(X_ADV)
    assert losses == pytest.approx({"ce_adv": mean([ce(z_adv[i], int(Y[i])) for i in range(2)])}, rel=1e-12)
    # training accuracy counts the images it trains on
    torch.testing.assert_close(logits.detach(), torch.tensor(z_adv, dtype=torch.float64))


def test_trades_is_clean_ce_plus_beta_kl_from_clean_to_adversarial(fixed_attack):
    _, losses = step("trades", beta=6.0)
    z, z_adv = logits_of(X), logits_of(X_ADV)
    assert losses["ce"] == pytest.approx(mean([ce(z[i], int(Y[i])) for i in range(2)]), rel=1e-12)
    assert losses["kl_robust"] == pytest.approx(
        6.0 * mean([kl(softmax(z[i]), softmax(z_adv[i])) for i in range(2)]), rel=1e-12
    )
    # the attack ascends KL(p(x) || p(x')), per example
    ((_, loss_fn, spec),) = fixed_attack
    per_example = loss_fn(torch.tensor(z_adv, dtype=torch.float64), Y)
    assert per_example.tolist() == pytest.approx([kl(softmax(z[i]), softmax(z_adv[i])) for i in range(2)], rel=1e-12)
    assert (spec.start, spec.mode) == ("normal", "eval")


@pytest.mark.parametrize("reduction,per_class", [("batchmean", 1), ("mean", 3)])
def test_ard_is_the_papers_formula(fixed_attack, reduction, per_class):
    _, losses = step("ard", alpha=0.3, temperature=4.0, reduction=reduction)
    z, z_adv, t = logits_of(X), logits_of(X_ADV), TEACHER[0].tolist()
    soft = mean([kl(softmax(t[i], 4.0), softmax(z_adv[i], 4.0)) for i in range(2)]) / per_class
    assert losses["kl_adv"] == pytest.approx(0.3 * 16 * soft, rel=1e-12)
    assert losses["ce"] == pytest.approx(0.7 * mean([ce(z[i], int(Y[i])) for i in range(2)]), rel=1e-12)
    ((target, loss_fn, spec),) = fixed_attack  # the attack: the student's CE on the true labels
    assert torch.equal(target, Y) and loss_fn(torch.tensor(z_adv), Y).tolist() == pytest.approx(
        [ce(z_adv[i], int(Y[i])) for i in range(2)]
    )
    assert (spec.start, spec.mode) == ("uniform", "train")


def test_rslad_replaces_hard_labels_with_the_teachers_soft_labels(fixed_attack):
    _, losses = step("rslad")
    z, z_adv, t = logits_of(X), logits_of(X_ADV), TEACHER[0].tolist()
    assert losses["kl_adv"] == pytest.approx(
        5 / 6 * mean([kl(softmax(t[i]), softmax(z_adv[i])) for i in range(2)]), rel=1e-12
    )
    assert losses["kl_clean"] == pytest.approx(
        1 / 6 * mean([kl(softmax(t[i]), softmax(z[i])) for i in range(2)]), rel=1e-12
    )
    ((target, loss_fn, _),) = fixed_attack  # the attack ascends KL(p_t(x) || p_s(x')), per example
    assert loss_fn(torch.tensor(z_adv, dtype=torch.float64), target).tolist() == pytest.approx(
        [kl(softmax(t[i]), softmax(z_adv[i])) for i in range(2)], rel=1e-12
    )


def test_robust_distillation_with_an_ensemble_uses_the_mean_of_probabilities(fixed_attack):
    two = torch.cat([TEACHER, TEACHER.flip(-1)])
    method = build_method(METHODS.get("rslad").Params(alpha=0.0), ensemble="mean_probs")
    _, losses = method.forward_train(Linear(), Teachers(cached=two), Batch(X, Y, torch.arange(2), 0.0))
    t = [[(a + b) / 2 for a, b in zip(softmax(r), softmax(list(reversed(r))))] for r in TEACHER[0].tolist()]
    z_adv = logits_of(X_ADV)
    assert float(losses["kl_adv"].detach()) == pytest.approx(
        mean([kl(t[i], softmax(z_adv[i])) for i in range(2)]), rel=1e-12
    )


# ------------------------------------------------------------------------------ the inner attack
def ce_per_example(z, y):
    return nn.functional.cross_entropy(z, y, reduction="none")


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    net = wrap(create_model("cnn_tiny"), "cifar10")
    torch.manual_seed(1)
    return net, torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_inner_attack_equals_torchattacks_pgd_on_the_same_model_and_seed(cnn, mode):
    net, x, y = cnn
    ours_net, their_net = copy.deepcopy(net), copy.deepcopy(net)
    spec = InnerAttack(eps=EPS, step_size=2 / 255, steps=5, mode=mode)
    batch = Batch(x, y, torch.arange(16), 0.0, seed=3, step=11)
    ours = perturb(ours_net.train(), x, y, ce_per_example, spec, batch)

    atk = torchattacks.PGD(their_net, eps=EPS, alpha=2 / 255, steps=5, random_start=True)
    atk.set_model_training_mode(model_training=mode == "train", batchnorm_training=mode == "train")
    torch.manual_seed(derive_seed(3, "inner_attack", 11))  # torchattacks draws its start from the global generator
    theirs = atk(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert (ours - x).abs().max() <= EPS + 1e-6 and not torch.equal(ours, x)
    assert ours_net.training  # the student's mode is restored
    # batch statistics in training mode, running statistics untouched in eval mode
    moved = not torch.equal(ours_net.net.features[0][1].running_mean, net.net.features[0][1].running_mean)
    assert moved == (mode == "train")
    torch.testing.assert_close(ours_net.net.features[0][1].running_mean, their_net.net.features[0][1].running_mean)


def test_inner_attack_draws_depend_on_seed_and_step_only(cnn):
    net, x, y = cnn
    net = copy.deepcopy(net).eval()
    loss = ce_per_example
    spec = KLInnerAttack(steps=2)

    def run(seed, step_):
        return perturb(net, x, y, loss, spec, Batch(x, y, torch.arange(16), 0.5, seed=seed, step=step_))

    assert torch.equal(run(0, 5), run(0, 5))
    assert not torch.equal(run(0, 5), run(0, 6)) and not torch.equal(run(0, 5), run(1, 5))
    start = (
        perturb(
            net, x, y, loss, KLInnerAttack(steps=1, step_size=1e-12), Batch(x, y, torch.arange(16), 0, seed=0, step=5)
        )
        - x
    )
    assert 0.0005 < start.std() < 0.0015  # TRADES' start: x + 0.001 N(0, 1)


def test_twins_attack_from_the_same_starts(cnn, monkeypatch):
    """pgd_at and ard at the same seed and step, from the same weights: the same adversarial batch."""
    import kdbench.training.methods.ard as ard_mod
    import kdbench.training.methods.pgd_at as pgd_mod

    net, x, y = cnn
    made = []

    def spy(*args):
        made.append(perturb(*args))
        return made[-1]

    monkeypatch.setattr(pgd_mod, "perturb", spy)
    monkeypatch.setattr(ard_mod, "perturb", spy)
    teacher = Teachers(cached=torch.randn(1, 16, 10))
    for name in ("pgd_at", "ard"):
        build_method(METHODS.get(name).Params()).forward_train(
            copy.deepcopy(net).train(), teacher, Batch(x, y, torch.arange(16), 0.0, seed=2, step=9)
        )
    assert len(made) == 2 and torch.equal(made[0], made[1])


# ------------------------------------------------------------------------------ suites and pairs
def robust_suite(**extra):
    students = {
        "base": {"arch": "cnn_tiny", "method": "baseline"},
        "kd": {"arch": "cnn_tiny", "method": "kd", "teachers": ["t"]},
        "at": {"arch": "cnn_tiny", "method": "pgd_at"},
        "trades": {"arch": "cnn_tiny", "method": "trades"},
        "ard": {"arch": "cnn_tiny", "method": "ard", "teachers": ["t"]},
        "rslad": {"arch": "cnn_tiny", "method": "rslad", "teachers": ["t"]},
    }
    for name, changes in extra.items():
        students[name] = {**students[name], **changes}
    return Suite.model_validate(
        {
            "name": "r",
            "dataset": {"name": "synthetic"},
            "teachers": {"t": {"arch": "cnn_small", "method": {"name": "pgd_at", "attack": {"steps": 3}}}},
            "students": students,
        }
    )


def test_robust_methods_are_held_against_adversarial_training():
    suite = robust_suite()
    assert {(p.distilled, p.baseline) for p in suite.pairs()} == {
        ("kd", "base"),
        ("trades", "at"),
        ("ard", "at"),
        ("rslad", "at"),
    }
    assert [suite.students[n].role for n in ("at", "trades", "ard", "rslad")] == [
        "baseline",
        "control",
        "distilled",
        "distilled",
    ]
    assert suite.teachers["t"].method.attack.steps == 3 and suite.teachers["t"].method.attack.eps == pytest.approx(
        8 / 255
    )
    assert suite.twin_warnings() == []


def test_twins_with_different_attack_budgets_are_named():
    suite = robust_suite(ard={"method": {"name": "ard", "attack": {"eps": "4/255", "steps": 3}}})
    assert suite.twin_warnings() == [
        "compare ard vs at: inner attacks differ in eps, steps; the twins do not train against the same adversary"
    ]


def test_inner_attack_settings_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="eps"):
        METHODS.get("pgd_at").Params(attack={"eps": 8})
    with pytest.raises(ValidationError, match="extra"):
        METHODS.get("rslad").Params(attack={"stpes": 3})
    # its own defaults survive an override
    assert METHODS.get("trades").Params(attack={"steps": 3}).attack.start == "normal"
