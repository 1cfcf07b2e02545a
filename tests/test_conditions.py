"""Conditions against their definitions: FGSM by hand, PGD's projection, noise per image."""

import pytest
import torch
import torch.nn.functional as F

from kdbench.evaluation.conditions import CONDITIONS
from kdbench.evaluation.evaluate import evaluate
from kdbench.models import create_model, wrap


def build(name, **params):
    cls = CONDITIONS.get(name)
    return cls.build(cls.Params(**params), seed=0)[0]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return wrap(create_model("cnn_tiny"), "cifar10").eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g), torch.arange(100, 116)


def test_fgsm_is_one_signed_gradient_step(model, batch):
    x, y, idx = batch
    eps = 4 / 255
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(model(xr), y).backward()
    by_hand = (x + eps * xr.grad.sign()).clamp(0, 1)
    got = build("fgsm", eps=[eps]).attack(model, x, y, idx, eps)
    assert torch.allclose(got, by_hand, atol=1e-6)


def test_pgd_stays_in_the_ball_and_the_box(model, batch):
    x, y, idx = batch
    eps = 8 / 255
    adv = build("pgd", eps=[eps], steps=7).attack(model, x, y, idx, eps)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1


def test_pgd_one_step_without_random_start_is_fgsm(model, batch):
    x, y, idx = batch
    eps = 2 / 255
    pgd = build("pgd", eps=[eps], steps=1, step_size=eps, random_start=False).attack(model, x, y, idx, eps)
    fgsm = build("fgsm", eps=[eps]).attack(model, x, y, idx, eps)
    assert torch.allclose(pgd, fgsm, atol=1e-6)


def test_pgd_is_seeded(model, batch):
    x, y, idx = batch
    pgd = build("pgd", eps=[8 / 255], steps=3)
    assert torch.equal(pgd.attack(model, x, y, idx, 8 / 255), pgd.attack(model, x, y, idx, 8 / 255))


def test_pgd_restarts_are_worst_case(model, batch):
    x, y, idx = batch
    eps = 2 / 255
    one = build("pgd", eps=[eps], steps=2).attack(model, x, y, idx, eps)
    three = build("pgd", eps=[eps], steps=2, restarts=3).attack(model, x, y, idx, eps)
    with torch.no_grad():
        assert (model(three).argmax(1) == y).sum() <= (model(one).argmax(1) == y).sum()
    assert (three - x).abs().max() <= eps + 1e-6


def test_gaussian_noise_per_image_and_statistics():
    cond = build("gaussian_noise", sigmas=[0.05])
    x = torch.full((64, 3, 32, 32), 0.5)
    idx = torch.arange(64)
    whole = cond.perturb(x, None, idx, 0.05)
    halves = torch.cat([cond.perturb(x[:20], None, idx[:20], 0.05), cond.perturb(x[20:], None, idx[20:], 0.05)])
    assert torch.equal(whole, halves)  # batch boundaries do not change a draw
    noise = whole - 0.5
    assert noise.std().item() == pytest.approx(0.05, rel=0.03)
    assert noise.mean().abs().item() < 0.002
    other = cond.perturb(x[:1], None, torch.tensor([5]), 0.05)
    assert torch.equal(other[0], whole[5])  # an image's noise depends on its index alone
    assert cond.perturb(torch.ones(2, 3, 4, 4), None, idx[:2], 0.5).max() <= 1.0


def test_evaluate_scores_perturbed_batches_once_per_condition(model, monkeypatch):
    cond = build("gaussian_noise", sigmas=[0.1])
    calls = []
    real = type(cond).perturb
    monkeypatch.setattr(type(cond), "perturb", lambda self, *a: calls.append(1) or real(self, *a))
    images = (torch.rand(40, 3, 32, 32) * 255).to(torch.uint8)
    labels = torch.randint(0, 10, (40,))
    models = {"a": model, "b": wrap(create_model("cnn_tiny"), "cifar10")}
    out = evaluate(models, [cond], images, labels, torch.arange(40), batch_size=16)
    assert len(calls) == 3  # 3 batches, made once each for both models
    assert out["a"].correct.shape == (1, 40)


def test_evaluate_batch_size_does_not_change_results(model):
    # random starts are seeded per example, so attacks with them are batch-independent too
    E = 0.1 / 255  # an untrained net's margins are thin
    conds = [
        build("clean"),
        build("gaussian_noise", sigmas=[0.1]),
        build("fgsm", eps=[2 / 255]),
        build("pgd", eps=[E], steps=3, restarts=2),
        build("cw", eps=[E], steps=3),
        build("apgd", eps=[E], steps=4, restarts=2),
        build("apgd_t", eps=[E], steps=3, target_classes=2),
    ]
    images = (torch.rand(30, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    with torch.no_grad():
        labels = model(images / 255).argmax(1)  # every clean image right: the attacks have work to do
    a = evaluate({"m": model}, conds, images, labels, torch.arange(30), batch_size=7)["m"]
    b = evaluate({"m": model}, conds, images, labels, torch.arange(30), batch_size=30)["m"]
    assert torch.equal(a.correct, b.correct)
    assert torch.allclose(a.clean_logits, b.clean_logits, atol=1e-5)
    fooled = (~a.correct[3:7]).sum(1)
    assert all(0 < int(f) < 30 for f in fooled), fooled  # each attack fooled some, not all


def test_an_examples_random_start_depends_on_its_index_alone(batch):
    from kdbench.evaluation.conditions.attack import Starts

    x, _, idx = batch
    key = (0, "pgd", 8 / 255, 0)
    whole = Starts(key, idx)(x)
    assert torch.equal(Starts(key, idx[5:9])(x[5:9]), whole[5:9])
    assert torch.equal(Starts(key, idx)(x, rows=torch.tensor([5, 6])), whole[5:7])
    assert not torch.equal(Starts(key, idx + 1)(x), whole)
    assert not torch.equal(Starts((0, "pgd", 8 / 255, 1), idx)(x), whole)  # each restart starts afresh
    assert not torch.equal(Starts(key, idx)(x, 2), whole)  # and each extra key (APGD-T's targets)
    assert whole.min() >= -1 and whole.max() < 1  # uniform on [-1, 1): mean 0, variance 1/3
    assert abs(float(whole.mean())) < 0.01 and abs(float(whole.var()) - 1 / 3) < 0.01


@pytest.mark.parametrize(
    "name,params,level",
    [
        ("gaussian_noise", {"sigmas": [0.1]}, 0.1),
        ("fgsm", {"eps": [8 / 255]}, 8 / 255),
        ("pgd", {"eps": [8 / 255], "steps": 2}, 8 / 255),
        ("corruptions", {"names": ["fog", "jpeg_compression", "glass_blur", "contrast"], "severities": [5]}, 5),
    ],
)
def test_conditions_never_write_into_the_shared_clean_batch(model, name, params, level):
    cls = CONDITIONS.get(name)
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=g).float() / 255
    y, idx = torch.randint(0, 10, (6,), generator=g), torch.arange(6)
    before = x.clone()
    for cond in cls.build(cls.Params(**params), seed=0):
        out = cond.attack(model, x, y, idx, level) if cond.model_dependent else cond.perturb(x, y, idx, level)
        assert torch.equal(x, before), cond.name
        assert not torch.equal(out, x), cond.name


@pytest.mark.parametrize("arch", ["cnn_tiny", "resnet20"])
def test_saliency_comes_from_the_clean_pass_with_the_logits_of_a_pass_without_gradients(arch):
    torch.manual_seed(0)
    net = wrap(create_model(arch), "cifar10").eval()
    images = (torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)
    labels = torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(4))
    # 23 examples keep gradients: two whole batches of 10, then 3 of the third
    out = evaluate({"m": net}, [build("clean")], images, labels, torch.arange(40), batch_size=10, saliency=23)["m"]
    x = images.float() / 255
    with torch.inference_mode():
        assert torch.equal(out.clean_logits, torch.cat([net(x[i : i + 10]) for i in range(0, 40, 10)]))
    expected = []
    for i in range(0, 23, 10):  # the input gradient of the true-class logit, batch by batch, as a separate pass
        xb = x[i : min(i + 10, 23)].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xb).gather(1, labels[i : i + len(xb), None]).sum(), xb)
        expected.append(g)
    assert torch.equal(out.saliency, torch.cat(expected))
    assert out.saliency.shape == (23, 3, 32, 32)
