"""The robust convention, the worst case and the masking checks on hand-made per-example results."""

import pytest
import torch

from kdbench.evaluation.diagnostics import from_results
from kdbench.evaluation.evaluate import Cell, ModelEval, robust_convention, worst_case_cells

E2, E8 = 2 / 255, 8 / 255


def bits(s: str) -> list[bool]:
    return [c == "1" for c in s]


def test_attack_rows_need_clean_and_worst_case_is_their_and():
    cells = [
        Cell("clean", "clean", None),
        Cell("fgsm", "attack", E8),
        Cell("pgd", "attack", E8),
        Cell("pgd", "attack", E2),
        Cell("gaussian_noise", "noise", 0.1),
    ]
    correct = torch.tensor([bits("11110000"), bits("11001100"), bits("10101010"), bits("11111111"), bits("00001111")])
    with_worst, out, counts = robust_convention(cells, correct.clone(), [8] * len(cells))
    assert counts == [8] * (len(cells) + 2)
    assert with_worst == cells + worst_case_cells(cells)
    assert [c.condition for c in worst_case_cells(cells)] == ["worst_case", "worst_case"]
    assert [c.level for c in worst_case_cells(cells)] == [E8, E2]
    assert out[1].tolist() == bits("11000000")  # fgsm: the clean mistakes that an attack 'fixed' do not count
    assert out[3].tolist() == bits("11110000")
    assert out[4].tolist() == bits("00001111")  # noise rows are not attack rows
    assert out[5].tolist() == bits("10000000")  # worst case at 8/255: fgsm AND pgd
    assert out[6].tolist() == out[3].tolist()  # one attack at 2/255: the worst case is that attack


def result(rows: dict[tuple[str, float], str], n=10) -> ModelEval:
    cells = [Cell("clean", "clean", None)] + [Cell(c, "attack", e) for c, e in rows]
    correct = torch.tensor([bits("1" * n)] + [bits(v) for v in rows.values()])
    return ModelEval(cells, correct, torch.empty(0), [])


KINDS = {"fgsm": "single_step", "pgd": "ce", "cw": "margin", "square": "black_box", "autoattack": "composite"}


def by_check(rows):
    return {r["check"]: r for r in rows}


def test_checks_from_results_by_hand():
    r = result(
        {("fgsm", E8): "1100000000", ("pgd", E8): "1111110000", ("cw", E8): "1000000000", ("square", E8): "1100000000"}
    )
    c = by_check(from_results(r, KINDS))
    # strongest iterative (cw, 10%) vs fgsm (20%): not worse
    assert (
        c["iterative_vs_single_step"]["value"] == pytest.approx(-0.1) and not c["iterative_vs_single_step"]["flagged"]
    )
    # pgd-CE 60% against the margin's 10%: 50 points, the saturated-softmax signature
    assert c["loss_dependence"]["value"] == pytest.approx(0.5) and c["loss_dependence"]["flagged"]
    # example 1 survives fgsm, pgd and cw and falls to nothing black-box: 0
    assert c["black_box_stronger"]["value"] == 0 and not c["black_box_stronger"]["flagged"]
    assert all(row["eps"] == "0.0313725" for row in c.values())


def test_black_box_stronger_and_single_step_by_hand():
    r = result({("fgsm", E2): "1000000000", ("pgd", E2): "1110000000", ("square", E2): "1000000000"})
    c = by_check(from_results(r, KINDS))
    assert c["iterative_vs_single_step"]["value"] == pytest.approx(0.2) and c["iterative_vs_single_step"]["flagged"]
    assert c["black_box_stronger"]["value"] == pytest.approx(0.0)  # fgsm already took examples 1 and 2
    r = result({("pgd", E2): "1110000000", ("square", E2): "1000000000"})
    c = by_check(from_results(r, KINDS))
    assert c["black_box_stronger"]["value"] == pytest.approx(0.2) and c["black_box_stronger"]["flagged"]
    assert set(c) == {"black_box_stronger"}  # no fgsm, no margin attack: those checks do not apply


def test_threshold_is_strict():
    # 5 of 100 is exactly 0.05: at the threshold, not above it
    r = result({("pgd", E8): "1" * 15 + "0" * 85, ("cw", E8): "1" * 10 + "0" * 90}, n=100)
    row = by_check(from_results(r, KINDS))["loss_dependence"]
    assert row["value"] == pytest.approx(0.05) and not row["flagged"] and row["threshold"] == 0.05
