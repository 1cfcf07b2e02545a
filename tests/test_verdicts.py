"""The verdict block: one sentence per compare pair, from the headline tests, in plain words."""

import fakerun
import numpy as np
import pandas as pd
import pytest

from kdbench.reports import render, tables
from kdbench.reports.verdicts import pair_verdicts
from kdbench.results.checks import load_run

TEACHER, BASE, KD, LS = "wrn40_2-teacher", "resnet20-baseline", "resnet20-kd", "resnet20-ls"
MODELS = (
    (TEACHER, "teacher", "teacher", "wrn40_2", 0.93),
    (BASE, "baseline", "baseline", "resnet20", 0.85),
    (LS, "control", "label_smoothing", "resnet20", 0.85),  # listed before KD: the block still puts KD first
    (KD, "distilled", "kd", "resnet20", 0.85),
)


def gain(pieces, condition, level=None, k=150):
    """KD equals its twin on `condition`, except k examples the twin gets wrong, in every seed."""
    for b, d in zip(
        pieces.rows(model=BASE, condition=condition, level=level),
        pieces.rows(model=KD, condition=condition, level=level),
    ):
        pieces.correct[d] = pieces.correct[b]
        pieces.correct[d, np.flatnonzero(~pieces.correct[b])[:k]] = True
    pieces.resync()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pieces = fakerun.fake_results(n=1000, seeds=(0, 1, 2), models=MODELS)
    gain(pieces, "clean")
    gain(pieces, "pgd", 4 / 255)
    path = fakerun.write(tmp_path_factory.mktemp("verdicts") / "run", pieces)
    # a flagged gradient-masking check on KD at 4/255: its robust gain must not be stated plainly
    flagged = {
        "model": KD,
        "seed": 0,
        "check": "unbounded",
        "eps": format(4 / 255, ".6g"),
        "value": 0.3,
        "threshold": 0.05,
        "flagged": True,
    }
    pd.DataFrame([flagged]).to_csv(path / "diagnostics.csv", index=False)
    return path


def test_one_sentence_per_pair_distilled_first(run_dir):
    data = tables.build(load_run(run_dir))
    kd, ls = pair_verdicts(data)
    assert (kd.kind, ls.kind) == ("distilled", "control")
    assert kd.title == f"{KD} vs {BASE} (resnet20, 3 seeds)"
    text = kd.sentence()
    assert text.startswith(f"{KD} vs {BASE} (resnet20, 3 seeds): clean accuracy +15.0 pp [")
    assert "(kd higher)" in text
    assert (
        "pgd ε=4/255 +15.0 pp [" in text
        and "not to be trusted: gradient masking suspected (resnet20-kd: unbounded)" in text
    )
    # what the seeds cannot decide is said once, with the smallest difference they would have seen
    assert "too few seeds to tell on" in text or "no detectable difference" in text
    assert ls.sentence().startswith(f"{LS} vs {BASE} (resnet20, 3 seeds): ")
    assert "kd higher" not in ls.sentence() and "(label_smoothing higher)" not in ls.sentence()


def test_a_control_has_no_teacher(run_dir):
    data = tables.build(load_run(run_dir))
    by_name = {p.distilled: p for p in data.pairs}
    assert by_name[LS].teachers == [] and by_name[LS].role == "control"
    assert by_name[KD].teachers == [TEACHER] and by_name[KD].role == "distilled"
    assert [p.distilled for p in data.pairs] == [KD, LS]


def test_the_block_opens_the_report(run_dir):
    html = render(run_dir, "html")
    assert html.index("At a glance") < html.index("<h3>Models</h3>") < html.index(f"{KD}</span> vs")
    assert html.index("Distilled students") < html.index("Controls (trained without a teacher)")
    assert "<strong>clean accuracy +15.0 pp [" in html
    md = render(run_dir, "md")
    assert md.index("## At a glance") < md.index(f"## {KD} vs {BASE}")
    assert f"- {KD} vs {BASE} (resnet20, 3 seeds): clean accuracy +15.0 pp \\[" in md
    assert "| metric | baseline | control |" in md  # the control's column says what it is


def test_one_seed_says_there_is_no_test(tmp_path):
    pieces = fakerun.fake_results(n=300, seeds=(0,), models=MODELS[:2] + MODELS[3:])
    data = tables.build(load_run(fakerun.write(tmp_path / "run", pieces)))
    (kd,) = pair_verdicts(data)
    assert "too few seeds to tell on clean accuracy (" in kd.sentence()
    assert kd.sentence().endswith("(one seed per model: no method-level test).")
