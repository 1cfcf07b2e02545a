"""The attacks against their references: AutoAttack against pyautoattack called directly, CW's
margin PGD against torchattacks' PGD where the two must agree, every attack inside the ball."""

import pytest
import torch
import torchattacks
from attack_helpers import Given, build, trained_net
from torch import nn

from kdbench.data import load_dataset
from kdbench.evaluation.evaluate import evaluate
from kdbench.models import create_model, wrap

EPS = 8 / 255


@pytest.fixture(scope="module")
def trained():
    return trained_net()


def test_autoattack_equals_pyautoattack_called_directly(trained):
    from pyautoattack import AutoAttack

    model, test = trained
    test = test.subset(torch.arange(48))  # AutoAttack's full budget: keep it small
    x, y = test.images.float() / 255, test.labels
    (cond,) = build("autoattack", eps=[EPS])
    result = evaluate({"m": model}, build("clean") + [cond], test.images, test.labels, test.indices, batch_size=16)["m"]
    row = [c.condition for c in result.cells].index("autoattack")

    reference = AutoAttack(model, norm="Linf", eps=EPS, version="standard", seed=0, device="cpu")
    x_ref, _ = reference.run_standard_evaluation(x, y, batch_size=16)
    with torch.no_grad():
        robust_ref = (model(x_ref).argmax(1) == y) & (model(x).argmax(1) == y)
    assert torch.equal(result.correct[row], robust_ref)
    assert 0 < int(robust_ref.sum()) < int((model(x).argmax(1) == y).sum())  # the attack did something, not everything


def test_cw_on_two_classes_is_pgd_on_cross_entropy():
    # with two classes the CE gradient is a positive multiple of the margin's, so their signed steps agree
    torch.manual_seed(3)
    model = (
        nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.Tanh(), nn.Linear(16, 2)).eval().requires_grad_(False)
    )
    x, y = torch.rand(32, 3, 8, 8), torch.randint(0, 2, (32,))
    (cw,) = build("cw", eps=[EPS], steps=7, step_size=1 / 255, random_start=False)
    ours = cw.attack(model, x, y, torch.arange(32), EPS)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=1 / 255, steps=7, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_equals_torchattacks_from_the_same_start(trained, random_start):
    model, test = trained
    x, y = test.images[:32].float() / 255, test.labels[:32]
    (pgd,) = build("pgd", eps=[EPS], steps=5, random_start=random_start)
    torch.manual_seed(7)
    noise = torch.empty_like(x).uniform_(-EPS, EPS)  # what torchattacks draws after the same seed
    ours = pgd.run_once(model, x, y, EPS, Given(noise / EPS))
    torch.manual_seed(7)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=2.5 * EPS / 5, steps=5, random_start=random_start)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert not torch.equal(ours, x)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_equals_pyautoattack_from_the_same_start(trained, loss):
    from pyautoattack.autopgd_base import APGDAttack

    model, test = trained
    x = test.images[:32].float() / 255
    with torch.no_grad():
        y = model(x).argmax(1)  # all correct, so pyautoattack attacks the whole batch, as we do
    (apgd,) = build("apgd", eps=[EPS], steps=6, loss=loss)
    torch.manual_seed(5)
    start = 2 * torch.rand(x.shape) - 1  # what pyautoattack draws first after its seed
    ours = apgd.run_once(model, x, y, EPS, Given(start))
    theirs = APGDAttack(
        model, n_iter=6, norm="Linf", n_restarts=1, eps=EPS, seed=5, loss=loss, eot_iter=1, rho=0.75, device="cpu"
    ).perturb(x, y)
    assert torch.equal(ours, theirs)
    assert 0 < int((ours != x).flatten(1).any(1).sum()) < len(x)  # it fooled some, not all


def test_margin_loss_by_hand():
    from kdbench.evaluation.conditions.cw import margin_loss

    z = torch.tensor([[1.0, 3.0, -2.0], [5.0, 0.5, 4.0]])
    assert margin_loss(z, torch.tensor([0, 0])).tolist() == [2.0, -1.0]


@pytest.mark.parametrize(
    "name,params",
    [
        ("cw", {"steps": 3}),
        ("apgd", {"steps": 5}),
        ("apgd", {"steps": 5, "loss": "dlr"}),
        ("apgd_t", {"steps": 3, "target_classes": 2}),
        ("square", {"queries": 30}),
    ],
)
def test_attacks_stay_in_the_ball_and_the_box_and_repeat(trained, name, params):
    model, test = trained
    x, y, idx = test.images[:24].float() / 255, test.labels[:24], test.indices[:24]
    (cond,) = build(name, eps=[EPS], **params)
    adv = cond.attack(model, x, y, idx, EPS)
    assert (adv - x).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(adv, cond.attack(model, x, y, idx, EPS))  # seeded
    with torch.no_grad():
        assert (model(adv).argmax(1) == y).sum() < (model(x).argmax(1) == y).sum()


def test_transfer_crafts_on_the_source_and_scores_the_target(trained):
    model, test = trained
    torch.manual_seed(5)
    source = wrap(create_model("cnn_tiny"), "cifar10").eval().requires_grad_(False)
    conds = (
        build("clean")
        + build("transfer", eps=[EPS], steps=5)
        + build("pgd", eps=[EPS], steps=5, step_size=2.5 * EPS / 5)
    )
    results = evaluate(
        {"t": model, "s": source},
        conds,
        test.images[:64],
        test.labels[:64],
        test.indices[:64],
        batch_size=32,
        sources={"t": {"transfer": source}},
    )
    assert [c.condition for c in results["s"].cells] == ["clean", "pgd", "worst_case"]  # no source, no transfer row
    x, y = test.images[:64].float() / 255, test.labels[:64]
    crafted = torch.cat(
        [
            build("pgd", eps=[EPS], steps=5)[0].attack(
                source, x[s : s + 32], y[s : s + 32], test.indices[s : s + 32], EPS
            )
            for s in (0, 32)
        ]
    )
    with torch.no_grad():
        expected = (model(crafted).argmax(1) == y) & (model(x).argmax(1) == y)
    t = results["t"]
    assert torch.equal(t.correct[[c.condition for c in t.cells].index("transfer")], expected)


def test_robust_preset_expands_to_the_four_attacks():
    conds = build("robust", eps=[EPS], steps=7)
    assert [c.name for c in conds] == ["autoattack", "fgsm", "pgd", "cw"]
    assert conds[2].params.steps == 7 and conds[0].params.version == "standard"


@pytest.mark.parametrize(
    "source,expected",
    [
        ("teacher", {"kd": ("t", 0), "base": ("t", 0), "t": None}),
        ("baseline_twin", {"kd": ("base", 1), "base": ("kd", 1), "t": None}),
        ("base", {"kd": ("base", 1), "base": None, "t": None}),
    ],
)
def test_transfer_sources_follow_the_compare_pairs(source, expected):
    from kdbench.config import Suite, transfer_source
    from kdbench.pipeline.plan import make_plan

    suite = Suite.model_validate(
        {
            "name": "s",
            "dataset": {"name": "synthetic"},
            "teachers": {"t": {"arch": "cnn_tiny"}},
            "students": {
                "base": {"arch": "cnn_tiny", "method": "baseline", "seeds": [1]},
                "kd": {"arch": "cnn_tiny", "method": "kd", "teachers": ["t"], "seeds": [1]},
            },
            "evaluate": {"transfer": {"eps": [EPS], "source": source}, "fidelity_under_attack": False},
        }
    )
    for model, want in expected.items():
        seed = 0 if model == "t" else 1
        assert transfer_source(suite, model, seed) == want
    plan = make_plan(suite, "data", "ids", {})
    for (model, seed), job in plan.eval_jobs.items():
        want = expected[model]
        assert len(job.deps) == (1 if want is None else 2)
        if want is not None:
            assert (
                job.deps[1].id.endswith(f"{want[0]}:seed{want[1]}")
                and job.spec["transfer_source"] == f"{want[0]}:seed{want[1]}"
            )


def test_autoattack_on_pyautoattacks_resnet18_equals_the_direct_call():
    # the model the issue names (pyautoattack's example ResNet-18); labels are its own predictions,
    # so every image is attacked; 2 images (batches of 1) keep AutoAttack's full budget
    # affordable on a CPU, where a ResNet-18 step costs ~60 ms per image
    from pyautoattack import AutoAttack

    from kdbench.config import TeacherSpec
    from kdbench.models.teachers import load_checkpoint_teacher

    model = load_checkpoint_teacher(
        TeacherSpec(checkpoint="pkg:pyautoattack/examples/model_test.pt", arch="resnet18", normalize="none")
    )
    model.eval().requires_grad_(False)
    test = load_dataset("synthetic", None, n_train=10, n_test=2, seed=2).test
    x = test.images.float() / 255
    with torch.no_grad():
        y = model(x).argmax(1)
    eps = 16 / 255  # every image falls to APGD-CE, so the costly later attacks have nothing left to do
    (cond,) = build("autoattack", eps=[eps])
    cond.batch_size = 1
    ours = cond.attack(model, x, y, test.indices, eps)
    reference, _ = AutoAttack(
        model, norm="Linf", eps=eps, version="standard", seed=0, device="cpu"
    ).run_standard_evaluation(x, y, batch_size=1)
    assert torch.equal(ours, reference)
    assert (ours - x).abs().max() <= eps + 1e-6 and not torch.equal(ours, x)
