"""A condition's own n: it scores the first n examples of the evaluation order, a class-stratified
subset, and every reader (metrics, checks, worst case, diagnostics, tests, report) keeps to them."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from kdbench.cli import main
from kdbench.data import load_dataset
from kdbench.data.subsets import nested_order, stratified_subset
from kdbench.results.checks import check_run
from kdbench.results.contract import ResultsError
from kdbench.results.read import read_run

SUITE = Path(__file__).parent / "suites" / "synthetic.yaml"
SUBSETS = ["evaluate.pgd.n=30", "--set", "evaluate.gaussian_noise.n=50", "--set", "students.kd.seeds=[0, 1]"]


def test_the_order_begins_with_each_stratified_subset():
    labels = torch.arange(10).repeat_interleave(30)[torch.randperm(300, generator=torch.Generator().manual_seed(1))]
    order = nested_order(labels, [40, 120], seed=3)
    assert sorted(order.tolist()) == list(range(300))
    for k in (40, 120):
        assert sorted(order[:k].tolist()) == stratified_subset(labels, k, 3).tolist()
        assert set(Counter(labels[order[:k]].tolist()).values()) == {k // 10}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("subsets")
    assert main(["run", str(SUITE), "--out", str(out), "--device", "cpu", "--set", *SUBSETS]) == 0
    return out / "synthetic" / "latest"


def test_rows_cover_their_conditions_examples(run_dir):
    run = read_run(run_dir)
    m = run.metrics
    n = dict(zip(m.condition, m.n))
    assert n == {"clean": 120, "gaussian_noise": 50, "fgsm": 120, "pgd": 30, "worst_case": 30}
    assert run.manifest["results_format"] == 3
    for r, k in enumerate(m.n):
        assert not run.correct[r, k:].any()  # nothing counted past a row's examples
        assert run.correct[r, :k].sum() == m.correct[r] and m.accuracy[r] == pytest.approx(m.correct[r] / k)
    # the worst case at an epsilon: FGSM and PGD both, on the examples PGD covers
    for level in sorted(set(m.level[m.condition == "pgd"])):
        for model, seed in set(zip(m.model, m.seed)) - {("teacher", 7)}:
            rows = [run.correct_for(model, seed, c, level) for c in ("fgsm", "pgd", "worst_case")]
            assert np.array_equal(rows[2], rows[0][:30] & rows[1])
    # the first 30 examples are the class-stratified subset of the evaluated ones
    test = load_dataset("synthetic", None, n_train=800, n_test=200, seed=0).test
    evaluated = torch.sort(torch.from_numpy(run.example_index)).values  # evaluate.n's subset, ascending
    first = stratified_subset(test.labels[evaluated], 30, 0)
    assert sorted(run.example_index[:30].tolist()) == evaluated[first].tolist()
    # model metrics (calibration) under PGD cover its 30 examples
    mm = run.model_metrics
    assert set(mm.loc[mm.condition == "pgd", "n"]) == {30}


def test_a_bit_past_a_rows_examples_is_refused(run_dir):
    run = read_run(run_dir)
    r = int(np.flatnonzero(run.metrics.condition.to_numpy() == "pgd")[0])
    run.correct[r, 40] = True
    with pytest.raises(ResultsError, match="past the first n = 30"):
        check_run(run)


def test_the_report_and_the_gate_read_it(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "-o", str(tmp_path / "r.md"), "--format", "md"]) == 0
    text = (tmp_path / "r.md").read_text()
    assert "pgd ε=2/255" in text
    assert "Scored on 120 test examples; pgd, worst_case on the first 30; gaussian_noise on the first 50" in text
    assert main(["baseline", str(run_dir), "-o", str(tmp_path / "base")]) == 0
    assert main(["gate", str(run_dir), "--baseline", str(tmp_path / "base")]) == 0
    out = capsys.readouterr().out
    assert "same networks" in out


def test_clean_takes_every_example(tmp_path, capsys):
    assert main(["validate", str(SUITE), "--set", "evaluate.clean.n=10"]) == 2
    assert "clean is scored on every evaluated example" in capsys.readouterr().err
