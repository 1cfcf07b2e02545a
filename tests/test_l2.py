"""The L2 threat model: each L2 attack against torchattacks' or pyautoattack's, the L2 ball, the
radius's units, one worst case per norm and epsilon, masking checks per norm, and the report and
RobustBench export keeping the norms apart (an L2 run end to end)."""

import json

import pytest
import torch
import torchattacks
from attack_helpers import Given, build, trained_net
from tiny_suite import run
from torch import nn

from kdbench.evaluation.diagnostics import from_results
from kdbench.evaluation.evaluate import evaluate

EPS = 0.5


def l2(v):
    return v.flatten(1).norm(dim=1)


@pytest.fixture(scope="module")
def trained():
    return trained_net()


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_l2_equals_torchattacks_pgdl2_from_the_same_start(trained, random_start):
    model, test = trained
    x, y = test.images[:32].float() / 255, test.labels[:32]
    (pgd,) = build("pgd", norm="L2", eps=[EPS], steps=5, random_start=random_start)
    assert pgd.name == "pgd_l2"
    torch.manual_seed(7)  # what torchattacks.PGDL2 draws after the same seed: a normal direction, a radius
    delta = torch.empty_like(x).normal_()
    n = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    start = delta * (torch.zeros_like(n).uniform_(0, 1) / n)
    ours = pgd.run_once(model, x, y, EPS, Given(start))
    torch.manual_seed(7)
    theirs = torchattacks.PGDL2(model, eps=EPS, alpha=2.5 * EPS / 5, steps=5, random_start=random_start)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert (l2(ours - x) <= EPS + 1e-5).all() and (l2(ours - x) > 0.9 * EPS).any()


def test_fgsm_l2_is_one_normalised_gradient_step(trained):
    model, test = trained
    x, y = test.images[:32].float() / 255, test.labels[:32]
    (fgsm,) = build("fgsm", norm="L2", eps=[EPS])
    ours = fgsm.attack(model, x, y, test.indices[:32], EPS)
    theirs = torchattacks.PGDL2(model, eps=EPS, alpha=EPS, steps=1, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    # by hand: x + eps * g / ||g||, clipped to the box
    x_req = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    by_hand = (x + EPS * g / l2(g).view(-1, 1, 1, 1)).clamp(0, 1)
    assert torch.allclose(ours, by_hand, atol=1e-5)


def test_cw_l2_on_two_classes_is_pgdl2_on_cross_entropy():
    # with two classes the CE gradient is a positive multiple of the margin's: the same unit steps
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.Tanh(), nn.Linear(16, 2))
    model = model.eval().requires_grad_(False)
    x, y = torch.rand(32, 3, 8, 8), torch.randint(0, 2, (32,))
    (cw,) = build("cw", norm="L2", eps=[EPS], steps=7, step_size=0.1, random_start=False)
    ours = cw.attack(model, x, y, torch.arange(32), EPS)
    theirs = torchattacks.PGDL2(model, eps=EPS, alpha=0.1, steps=7, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_l2_equals_pyautoattack_from_the_same_start(trained, loss):
    from pyautoattack.autopgd_base import APGDAttack

    model, test = trained
    x = test.images[:32].float() / 255
    with torch.no_grad():
        y = model(x).argmax(1)  # all correct, so pyautoattack attacks the whole batch, as we do
    (apgd,) = build("apgd", norm="L2", eps=[EPS], steps=6, loss=loss)
    torch.manual_seed(5)
    start = torch.randn(x.shape)  # what pyautoattack's L2 run draws first after its seed
    ours = apgd.run_once(model, x, y, EPS, Given(start))
    theirs = APGDAttack(
        model, n_iter=6, norm="L2", n_restarts=1, eps=EPS, seed=5, loss=loss, eot_iter=1, rho=0.75, device="cpu"
    ).perturb(x, y)
    assert torch.equal(ours, theirs)
    assert 0 < int((ours != x).flatten(1).any(1).sum()) < len(x)


def test_autoattack_l2_equals_pyautoattack_called_directly(trained):
    from pyautoattack import AutoAttack

    model, test = trained
    test = test.subset(torch.arange(16))
    x, y = test.images.float() / 255, test.labels
    # two of its attacks keep it affordable: the wrapper passes the version through, as in Linf
    (cond,) = build("autoattack", norm="L2", eps=[EPS], version="custom", attacks=["apgd-ce", "apgd-dlr"])
    result = evaluate({"m": model}, build("clean") + [cond], test.images, test.labels, test.indices, batch_size=8)["m"]
    names = [c.condition for c in result.cells]
    assert names == ["clean", "autoattack_l2", "worst_case_l2"]
    reference = AutoAttack(
        model, norm="L2", eps=EPS, version="custom", attacks=["apgd-ce", "apgd-dlr"], seed=0, device="cpu"
    )
    reference.verbose = False
    x_ref, _ = reference.run_standard_evaluation(x, y, batch_size=8)
    with torch.no_grad():
        robust_ref = (model(x_ref).argmax(1) == y) & (model(x).argmax(1) == y)
    assert torch.equal(result.correct[names.index("autoattack_l2")], robust_ref)
    assert 0 < int(robust_ref.sum()) < int((model(x).argmax(1) == y).sum())


@pytest.mark.parametrize(
    "name,params",
    [
        ("fgsm", {}),
        ("pgd", {"steps": 3, "restarts": 2}),
        ("cw", {"steps": 3}),
        ("apgd", {"steps": 5}),
        ("apgd_t", {"steps": 3, "target_classes": 2}),
        ("square", {"queries": 30}),
    ],
)
def test_l2_attacks_stay_in_the_ball_and_the_box_and_repeat(trained, name, params):
    model, test = trained
    x, y, idx = test.images[:24].float() / 255, test.labels[:24], test.indices[:24]
    (cond,) = build(name, norm="L2", eps=[EPS], **params)
    adv = cond.attack(model, x, y, idx, EPS)
    assert (l2(adv - x) <= EPS + 1e-4).all() and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > 8 / 255  # an L2 ball, not a Linf one: some pixels move far
    assert torch.equal(adv, cond.attack(model, x, y, idx, EPS))  # seeded
    with torch.no_grad():
        assert (model(adv).argmax(1) == y).sum() < (model(x).argmax(1) == y).sum()


def test_a_batch_does_not_change_an_examples_l2_start():
    (pgd,) = build("pgd", norm="L2", eps=[EPS], steps=1)
    from kdbench.evaluation.conditions.attack import Starts

    x = torch.zeros(6, 3, 4, 4)
    whole = Starts((0, "pgd_l2", EPS, 0), torch.arange(6), "L2").in_ball(x)
    part = Starts((0, "pgd_l2", EPS, 0), torch.arange(3, 6), "L2").in_ball(x[3:])
    assert torch.equal(whole[3:], part)
    assert (l2(whole) < 1).all() and len(set(l2(whole).tolist())) == 6  # inside the unit ball, radii differ


def test_worst_case_is_taken_per_norm_and_epsilon(trained):
    model, test = trained
    test = test.subset(torch.arange(60))
    conds = (
        build("clean")
        + build("fgsm", eps=[4 / 255])
        + build("pgd", eps=[4 / 255], steps=3)
        + build("apgd", norm="L2", eps=[EPS, 1.0], steps=4)
        + build("square", norm="L2", eps=[EPS], queries=20)
    )
    r = evaluate({"m": model}, conds, test.images, test.labels, test.indices, batch_size=30)["m"]
    keys = [(c.condition, c.level) for c in r.cells]
    assert keys[-3:] == [("worst_case", 4 / 255), ("worst_case_l2", EPS), ("worst_case_l2", 1.0)]
    row = {k: i for i, k in enumerate(keys)}
    c = r.correct
    assert torch.equal(c[row["worst_case", 4 / 255]], c[row["fgsm", 4 / 255]] & c[row["pgd", 4 / 255]])
    assert torch.equal(c[row["worst_case_l2", EPS]], c[row["apgd_l2", EPS]] & c[row["square_l2", EPS]])
    assert torch.equal(c[row["worst_case_l2", 1.0]], c[row["apgd_l2", 1.0]])
    # masking checks compare attacks of one norm only: FGSM (Linf) never meets the L2 APGD
    checks = from_results(r, {cond.name: cond.kind for cond in conds if hasattr(cond, "kind")})
    assert {(k["check"], k["norm"], k["eps"]) for k in checks} == {
        ("iterative_vs_single_step", "Linf", "0.0156863"),
        ("black_box_stronger", "L2", "0.5"),
    }


@pytest.mark.parametrize(
    "entry,expected",
    [
        ("pgd: {norm: L2, eps: [128]}", "evaluate.pgd.eps: an L2 radius or step of 128 is outside [0, 20]"),
        ("pgd: {norm: L2, eps: [0.5], step_size: 30}", "evaluate.pgd.step_size: an L2 radius or step of 30"),
        ("pgd: {eps: [8]}", "write 8/255"),
        ("autoattack: {norm: L1, eps: [0.5]}", "evaluate.autoattack.norm"),
    ],
)
def test_radii_are_checked_in_their_norms_units(tmp_path, entry, expected):
    from kdbench.config import load_suite
    from kdbench.config.errors import SuiteError

    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ndataset: {name: synthetic}\nstudents: {b: {arch: cnn_tiny, method: baseline}}\n"
        f"evaluate:\n  {entry}\n"
    )
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert expected in str(err.value)
    assert "0.5 on CIFAR-10" in str(err.value) or "L2" not in expected


def test_both_norms_in_one_suite_through_the_report_and_the_robustbench_export(tmp_path):
    from kdbench.cli import main

    suite = tmp_path / "l2.yaml"
    suite.write_text(
        """
name: l2
dataset: {name: synthetic, params: {n_train: 240, n_test: 60}}
train: {epochs: 1, batch_size: 40, lr: 0.05, augment: false}
teachers:
  t: {arch: cnn_tiny}
students:
  base: {arch: cnn_tiny, method: baseline, seeds: [0]}
  kd: {arch: cnn_tiny, method: kd, teachers: [t], seeds: [0]}
evaluate:
  n: 40
  batch_size: 20
  saliency: 0
  pgd: {eps: [4/255], steps: 2}
  fgsm: {norm: L2, eps: [0.25]}
  apgd: {norm: L2, eps: [0.25], steps: 5}
  diagnostics: {subset: 10, unbounded_steps: 2, steps_factor: 2}
"""
    )
    assert run(suite, tmp_path / "out") == 0
    run_dir = tmp_path / "out" / "l2" / "latest"
    import kdbench  # every run is recorded in its --out's runs index

    (indexed,) = kdbench.runs(tmp_path / "out" / "runs.sqlite").path
    assert indexed == str(run_dir.resolve())
    assert "worst_case_l2" in set(kdbench.runs(tmp_path / "out" / "runs.sqlite", "metrics").condition)
    import pandas as pd

    m = pd.read_csv(run_dir / "metrics.csv", dtype={"level": str}, keep_default_na=False)
    attack = m[m.group == "attack"]
    assert set(zip(attack.condition, attack.level)) == {
        ("pgd", "0.0156863"),
        ("worst_case", "0.0156863"),
        ("fgsm_l2", "0.25"),
        ("apgd_l2", "0.25"),
        ("worst_case_l2", "0.25"),
    }
    d = pd.read_csv(run_dir / "diagnostics.csv", dtype={"eps": str, "norm": str}, keep_default_na=False)
    assert set(d.loc[d.check == "iterative_vs_single_step", "norm"]) == {"L2"}
    assert set(d.loc[d.check == "more_steps_help", "norm"]) == {"Linf"}
    assert main(["report", str(run_dir), "--format", "md", "-o", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert "worst_case_l2 ε=0.25" in text and "worst_case ε=4/255" in text
    assert "ε=0.25/255" not in text and "64/255" not in text  # an L2 radius is never read as a pixel level
    out = tmp_path / "rb"
    assert main(["export", str(run_dir), "--format", "robustbench", "-o", str(out)]) == 0
    assert not (out / "synthetic" / "L2").exists()  # no AutoAttack ran: nothing is RobustBench's number
    text = (run_dir / "manifest.json").read_text()
    assert '"norm": "L2"' in text or json.loads(text)["suite"]["evaluate"]["fgsm"]["norm"] == "L2"
