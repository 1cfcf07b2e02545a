"""kdbench must not be fooled by gradient masking: the same network with its logits scaled by 1000
(identical predictions) looks robust to cross-entropy attacks; the worst case over attacks and the
masking checks must see through it."""

import copy

import pytest
import torch

from kdbench.config import TrainRecipe
from kdbench.data import load_dataset
from kdbench.evaluation.conditions import CONDITIONS
from kdbench.evaluation.diagnostics import DiagnosticsParams, diagnose
from kdbench.evaluation.evaluate import evaluate
from kdbench.models import create_model, wrap
from kdbench.training.loop import train
from kdbench.training.methods import METHODS, build_method

EPS = 8 / 255
N = 120


def conditions(**extra):
    specs = {
        "clean": {},
        "fgsm": {"eps": [EPS]},
        "pgd": {"eps": [EPS], "steps": 10},
        "cw": {"eps": [EPS], "steps": 10},
        "apgd_t": {"eps": [EPS], "steps": 20},
        **extra,
    }
    out = []
    for name, params in specs.items():
        cls = CONDITIONS.get(name)
        out += cls.build(cls.Params(**params), seed=0)
    return out


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return load_dataset("synthetic", None, n_train=600, n_test=N, seed=0)


@pytest.fixture(scope="module")
def models(data):
    torch.manual_seed(0)
    net = wrap(create_model("cnn_tiny"), "cifar10")
    recipe = TrainRecipe(
        epochs=2, batch_size=50, optimizer="adam", lr=0.01, weight_decay=0, schedule="constant", augment=False
    )
    train(net, data.train.images, data.train.labels, recipe, build_method(METHODS.get("baseline").Params()), seed=0)
    scaled = copy.deepcopy(net)
    with torch.no_grad():
        scaled.net.fc.weight.mul_(1000)
        scaled.net.fc.bias.mul_(1000)
    return {"plain": net.eval(), "scaled": scaled.eval()}


@pytest.fixture(scope="module")
def scored(data, models):
    conds = conditions()
    t = data.test
    results = evaluate(models, conds, t.images, t.labels, t.indices, batch_size=64)
    x, y = t.images.float() / 255, t.labels
    params = DiagnosticsParams(subset=60, unbounded_steps=10, steps_factor=4)
    checks = {k: diagnose(models[k], x[:60], y[:60], results[k], conds, params, seed=0) for k in models}
    return results, checks


def accuracy(result, condition):
    i = [c.condition for c in result.cells].index(condition)
    return float(result.correct[i].float().mean())


def flags(rows):
    return {r["check"] for r in rows if r["flagged"]}


def test_predictions_are_identical(data, models):
    x = data.test.images.float() / 255
    with torch.no_grad():
        assert torch.equal(models["plain"](x).argmax(1), models["scaled"](x).argmax(1))


def test_cross_entropy_attacks_are_fooled_worst_case_is_not(scored):
    results, _ = scored
    plain, scaled = results["plain"], results["scaled"]
    assert accuracy(scaled, "pgd") > accuracy(plain, "pgd") + 0.3  # the trap: CE-PGD calls it robust
    assert accuracy(scaled, "fgsm") > accuracy(plain, "fgsm") + 0.3
    assert abs(accuracy(scaled, "worst_case") - accuracy(plain, "worst_case")) <= 0.02
    assert accuracy(scaled, "worst_case") < accuracy(plain, "clean") - 0.3


def test_masking_checks_flag_the_scaled_model_only(scored):
    _, checks = scored
    assert {"loss_dependence", "vanishing_gradient"} <= flags(checks["scaled"]), checks["scaled"]
    assert flags(checks["plain"]) == set(), checks["plain"]
    margins = {k: next(r["value"] for r in rows if r["check"] == "median_logit_margin") for k, rows in checks.items()}
    assert margins["scaled"] == pytest.approx(1000 * margins["plain"], rel=1e-3)


def test_black_box_attack_beats_masked_gradients(data, models):
    conds = conditions(square={"eps": [EPS], "queries": 300})
    conds = [c for c in conds if c.name in ("clean", "pgd", "square")]
    t = data.test
    results = evaluate({"scaled": models["scaled"]}, conds, t.images[:40], t.labels[:40], t.indices[:40], batch_size=40)
    from kdbench.evaluation.diagnostics import from_results

    rows = from_results(results["scaled"], {"pgd": "ce", "square": "black_box"})
    assert [r["check"] for r in rows] == ["black_box_stronger"] and rows[0]["flagged"], rows
