"""The report: its numbers (against kdbench.analysis.stats and scipy on planted differences), its HTML and Markdown."""

import base64
import re
import xml.etree.ElementTree as ET

import fakerun
import numpy as np
import pytest
from scipy import stats as sps

from kdbench.cli import main
from kdbench.reports import keys, pairs, render, tables
from kdbench.results.checks import load_run
from kdbench.results.contract import ResultsError
from kdbench.results.read import read_run

KD, BASE, TEACHER = "resnet20-kd", "resnet20-baseline", "wrn40_2-teacher"
EVIL = "<script>alert(1)</script>"


def plant(pieces, condition="clean", lose=10, gain=30, seed_row=0):
    """Make the distilled student equal to its baseline on `condition`, then move known examples."""
    b = pieces.rows(model=BASE, condition=condition)[seed_row]
    d = pieces.rows(model=KD, condition=condition)[seed_row]
    pieces.correct[d] = pieces.correct[b]
    right, wrong = np.flatnonzero(pieces.correct[b]), np.flatnonzero(~pieces.correct[b])
    pieces.correct[d, right[:lose]] = False
    pieces.correct[d, wrong[:gain]] = True
    pieces.resync()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    pieces = fakerun.fake_results(n=800, seeds=(0,))
    plant(pieces)
    return load_run(fakerun.write(tmp_path_factory.mktemp("planted") / "run", pieces)), pieces


def test_one_seed_pair_has_per_network_tests_but_no_method_level_claim(planted):
    run, pieces = planted
    data = tables.build(run)
    (pair,) = data.pairs
    assert (pair.distilled, pair.baseline, pair.teachers) == (KD, BASE, [TEACHER])
    row = pair.table.set_index("label").loc["clean"]
    n = 800
    assert row["diff"] == pytest.approx(20 / n)
    # training randomness cannot be estimated from one seed: no interval, no p, an infinite MDD
    assert np.isnan(row["p"]) and np.isnan(row["ci_lo"]) and np.isinf(row["mdd"])
    assert row["verdict"] == "too few seeds to tell"
    assert data.holm_family == 0
    # the per-network detail: exact McNemar on the planted discordant examples
    detail = pair.per_seed.set_index("label").loc["clean"]
    assert (detail["only_base"], detail["only_dist"]) == (10, 30)
    assert detail["p"] == pytest.approx(sps.binomtest(30, 40, 0.5).pvalue)
    base_correct = int(pieces.correct[pieces.rows(model=BASE, condition="clean")[0]].sum())
    ref = sps.binomtest(base_correct, n).proportion_ci(method="wilson")
    assert (row["base_lo"], row["base_hi"]) == pytest.approx((ref.low, ref.high))
    assert row[f"teacher:{TEACHER}"] == pytest.approx(
        pieces.metrics.set_index(["model", "condition"]).loc[(TEACHER, "clean"), "accuracy"]
    )


def _matrix(pieces, model, condition="clean"):
    return pieces.correct[pieces.rows(model=model, condition=condition)]


def test_several_seeds_give_the_method_level_test_and_holm(tmp_path):
    from kdbench.analysis import stats

    pieces = fakerun.fake_results(n=500, seeds=(0, 1, 2))
    for s in range(3):
        plant(pieces, lose=5 + s, gain=15, seed_row=s)
    data = tables.build(load_run(fakerun.write(tmp_path / "run", pieces)))
    (pair,) = data.pairs
    assert pair.design == "paired"
    row = pair.table.set_index("label").loc["clean"]
    assert row["seed_pairs"] == 3
    diffs = np.array([10, 9, 8]) / 500
    assert row["diff"] == pytest.approx(diffs.mean())
    assert row["diff_sd"] == pytest.approx(diffs.std(ddof=1))
    want = stats.method_test_paired(_matrix(pieces, BASE), _matrix(pieces, KD))
    assert (row["p"], row["ci_lo"], row["ci_hi"]) == pytest.approx((want.pvalue, *want.ci))
    accs = pieces.metrics[(pieces.metrics["model"] == BASE) & (pieces.metrics["condition"] == "clean")]["accuracy"]
    assert row["base_sd"] == pytest.approx(accs.std(ddof=1))
    assert np.isnan(row["base_lo"])  # no single-model Wilson interval for a mean over seeds
    # per seed pair, never pooled
    detail = pair.per_seed[pair.per_seed["label"] == "clean"]
    assert list(zip(detail["only_base"], detail["only_dist"])) == [(5, 15), (6, 15), (7, 15)]
    # Holm over every difference; the verdict follows p Holm and the MDD
    assert data.holm_family == 7
    assert pair.table["p_holm"].to_numpy() == pytest.approx(stats.holm(pair.table["p"].to_numpy()))
    for r in pair.table.itertuples():
        expected = (
            ("kd higher" if r.diff > 0 else "kd lower")
            if r.p_holm <= 0.05
            else ("too few seeds to tell" if r.mdd > max(abs(r.diff), 0.01) else "no detectable difference")
        )
        assert r.verdict == expected
        assert r.mdd == pytest.approx(r.test.mdd_at(0.05 / 7))  # the family's Bonferroni level


def test_seeds_that_differ_get_the_unpaired_test(tmp_path):
    from kdbench.analysis import stats

    pieces = fakerun.fake_results(n=400, seeds=(0, 1, 2))
    keep = ~((pieces.metrics["model"] == KD) & (pieces.metrics["seed"] == 0)).to_numpy()
    keep &= ~((pieces.metrics["model"] == BASE) & (pieces.metrics["seed"] == 2)).to_numpy()
    pieces.metrics, pieces.correct = pieces.metrics[keep].reset_index(drop=True), pieces.correct[keep]
    path = fakerun.write(tmp_path / "run", pieces)
    data = tables.build(load_run(path))
    (pair,) = data.pairs
    assert pair.design == "unpaired" and pair.seeds == ([0, 1], [1, 2])
    row = pair.table.set_index("label").loc["clean"]
    want = stats.method_test_unpaired(_matrix(pieces, BASE), _matrix(pieces, KD))
    assert (row["diff"], row["p"], row["mdd"]) == pytest.approx((want.difference, want.pvalue, want.mdd_at(0.05 / 7)))
    assert "unpaired (the two models' seeds differ)" in render(path, "md")


def test_verdict_words():
    assert pairs.verdict(0.02, 0.01, 0.01, "kd") == "kd higher"
    assert pairs.verdict(-0.02, 0.01, 0.01, "kd") == "kd lower"
    assert pairs.verdict(0.005, 0.3, 0.03, "kd") == "too few seeds to tell"
    assert pairs.verdict(0.005, 0.3, float("inf"), "kd") == "too few seeds to tell"
    assert pairs.verdict(0.02, 0.3, 0.01, "kd") == "no detectable difference"
    assert pairs.verdict(0.001, 0.8, 0.008, "kd") == "no detectable difference"  # could have seen 1 pp, saw nothing
    assert pairs.verdict(-0.015, 0.2, 0.016, "kd") == "too few seeds to tell"


def test_corruption_cells_are_a_holm_family_of_their_own(tmp_path):
    pieces = fakerun.fake_results(n=300, seeds=(0, 1, 2), corruptions=True)
    data = tables.build(load_run(fakerun.write(tmp_path / "run", pieces)))
    t = data.pairs[0].table
    assert (data.holm_family, data.holm_detail) == (8, 75)  # clean, mean corruption, 2 noise, 4 attack; 15 x 5
    from kdbench.analysis import stats

    head = t[t["group"] != "corruption"]
    assert head["p_holm"].to_numpy() == pytest.approx(stats.holm(head["p"].to_numpy()))


def test_mean_corruption_accuracy_over_the_benchmark_15(tmp_path):
    pieces = fakerun.fake_results(n=300, seeds=(0, 1), corruptions=True)
    data = tables.build(load_run(fakerun.write(tmp_path / "run", pieces)))
    m = pieces.metrics
    want = m[(m["model"] == KD) & (m["group"] == "corruption")].groupby("seed")["accuracy"].mean()
    got = data.mean_corruption.set_index(["model", "seed"]).loc[KD, "accuracy"]
    assert got.to_numpy() == pytest.approx(want.to_numpy())
    row = data.pairs[0].table.set_index("condition").loc[keys.MEAN_CORRUPTION]
    assert row["label"] == "corruptions: mean of the 15"
    # not binary, still tested at the method level (two seeds)
    assert row["p"] > 0 and row["ci_lo"] < row["diff"] < row["ci_hi"]
    assert data.corruption.shape == (15, 3)
    assert data.mce is None and "mCE not shown" in data.mce_note


def test_a_subset_of_corruptions_says_so(tmp_path):
    pieces = fakerun.fake_results(n=200, corruptions=True)
    keep = (
        ~pieces.metrics["condition"].isin([f"c:{c}" for c in fakerun.CORRUPTIONS15[3:]])
        | (pieces.metrics["group"] != "corruption")
    ).to_numpy()
    pieces.metrics, pieces.correct = pieces.metrics[keep].reset_index(drop=True), pieces.correct[keep]
    data = tables.build(load_run(fakerun.write(tmp_path / "run", pieces)))
    assert data.mean_corruption_label == "corruptions: mean of 3 of the 15"


def test_mce_is_shown_against_the_suites_reference_model(tmp_path):
    from kdbench.evaluation.conditions.corruptions.metrics import mce_table

    pieces = fakerun.fake_results(n=200, corruptions=True)
    pieces.manifest["suite"]["evaluate"]["corruptions"] = {"reference_model": BASE}
    path = fakerun.write(tmp_path / "run", pieces)
    md = render(path, "md")
    want = mce_table(pieces.metrics, reference=BASE).set_index("model")
    assert want.loc[BASE, "mce"].mean() == pytest.approx(100.0)
    row = next(line for line in md.splitlines() if line.startswith("| mCE |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "100" and float(cells[2]) == pytest.approx(want.loc[KD, "mce"].mean(), abs=0.05)
    assert f"mCE relative to {BASE}" in md


def test_summary_rows_are_shown_but_not_tested(tmp_path):
    """Rows of an unknown group (a summary such as a mean) carry no per-example results."""
    pieces = fakerun.fake_results(n=200, seeds=(0, 1))
    import pandas as pd

    extra = pieces.metrics[pieces.metrics["condition"] == "clean"].copy()
    extra["condition"], extra["group"], extra["correct"] = "mce", "summary", 0
    extra["accuracy"] = [1.0, 1.0, 1.0, 0.9, 0.9]
    pieces.metrics = pd.concat([pieces.metrics, extra], ignore_index=True)
    pieces.correct = np.vstack([pieces.correct, np.zeros((len(extra), pieces.correct.shape[1]), bool)])
    data = tables.build(load_run(fakerun.write(tmp_path / "run", pieces)))
    row = data.pairs[0].table.set_index("condition").loc["mce"]
    assert row["diff"] == pytest.approx(-0.1) and np.isnan(row["p"])
    assert data.holm_family == 7


@pytest.fixture(scope="module")
def full_html(tmp_path_factory):
    pieces = fakerun.fake_results(n=400, seeds=(0, 1), corruptions=True)
    path = fakerun.write(tmp_path_factory.mktemp("full") / "run", pieces)
    return render(path, "html")


def _data_uris(html):
    return re.findall(r'src="(data:[^"]*)"', html)


def test_html_is_self_contained(full_html):
    html = full_html
    assert html.startswith("<!doctype html>")
    assert "<script" not in html.lower()
    # every src/href is an inline data: URI or an in-page anchor: nothing to fetch
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', html):
        assert value.startswith("data:image/svg+xml;base64,") or value.startswith("#"), (attr, value[:60])
    assert not re.search(r"url\(", html)  # no CSS fetches either
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for section in (
        "resnet20-kd</span> vs",
        "Teachers (reference)",
        "Teacher–student agreement",
        "Corruptions by model",
        "Statistics used",
        "Provenance",
    ):
        assert section in html


def test_html_figures_are_valid_svg(full_html):
    uris = _data_uris(full_html)
    assert len(uris) == 6  # differences, noise, attacks, corruptions, heat map, robust-vs-clean scatter
    for uri in uris:
        svg = base64.b64decode(uri.split(",", 1)[1])
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        assert b"<script" not in svg


def test_html_shows_the_headline_numbers(full_html):
    html = full_html
    assert "corruptions: mean of the 15" in html
    assert "pgd ε=4/255" in html and "gaussian_noise σ=0.1" in html
    assert "mean ± sd over 2 seeds" in html
    assert "headline differences" in html and "Banerjee" in html and "exact McNemar" in html
    assert "MDD pp" in html and "Per seed pair: these trained networks" in html
    assert re.search(
        r'<td class="l[^"]*">(too few seeds to tell|no detectable difference|kd higher|kd lower)</td>', html
    )


def test_model_names_that_are_not_names_are_refused_when_read(tmp_path):
    for bad in (EVIL, "_base$x$", "a b"):
        models = (
            ("t", "teacher", "teacher", "wrn", 0.9),
            ("b", "baseline", "baseline", "r20", 0.8),
            (bad, "distilled", "kd", "r20", 0.82),
        )
        path = fakerun.write(tmp_path / f"run{len(bad)}", fakerun.fake_results(n=50, models=models))
        with pytest.raises(ResultsError, match="metrics.csv: 'model' holds .* which is not a model name"):
            read_run(path)


def test_manifest_values_are_escaped(tmp_path):
    # names cannot carry markup (read_run refuses them); the manifest's free text still can
    pieces = fakerun.fake_results(n=200)
    pieces.manifest["git_commit"] = '"><img src=x onerror=alert(2)>'
    pieces.manifest["suite_name"] = pieces.manifest["suite"]["name"] = EVIL
    path = fakerun.write(tmp_path / "run", pieces)
    html = render(path, "html")
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    md = render(path, "md")
    assert "<script" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    for uri in _data_uris(html):  # text in figures is drawn as glyph paths, never as markup
        assert b"<script" not in base64.b64decode(uri.split(",", 1)[1])


def test_markdown_has_the_same_tables(tmp_path):
    pieces = fakerun.fake_results(n=300, seeds=(0,))
    plant(pieces)
    md = render(fakerun.write(tmp_path / "run", pieces), "md")
    headline, detail = [
        [c.strip() for c in ln.strip("|").split("|")] for ln in md.splitlines() if ln.startswith("| clean |")
    ][:2]
    assert headline[3].startswith("+6.7")  # 20 of 300 examples
    assert headline[5] == "—" and headline[8] == "too few seeds to tell"  # one seed: no method-level claim
    assert detail[5] == "10 / 30" and detail[6] == f"{sps.binomtest(30, 40).pvalue:.3f}"
    assert "## Teachers" in md and "## Teacher-student agreement (clean)" in md and "## Statistics" in md


def test_report_tolerates_a_sparse_manifest(tmp_path):
    pieces = fakerun.fake_results(n=100)
    pieces.manifest = {"suite_name": "bare"}
    html = render(fakerun.write(tmp_path / "run", pieces), "html")
    assert "kdbench report: bare / run" in html
    assert "resnet20-kd</span> vs" in html  # pairs found from roles and architectures


def test_report_without_pairs(tmp_path):
    pieces = fakerun.fake_results(n=100, models=fakerun.MODELS[:1])
    html = render(fakerun.write(tmp_path / "run", pieces), "html")
    assert "compares no distilled student" in html


def test_cli_report(tmp_path, capsys, monkeypatch):
    run_dir = fakerun.write(tmp_path / "results" / "fake" / "20260101T000000Z", fakerun.fake_results(n=100))
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == "reports/fake-20260101T000000Z.html" and (tmp_path / out).is_file()
    assert main(["report", str(run_dir), "--format", "md", "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith("# kdbench report: fake / 20260101T000000Z")
    assert main(["report", str(run_dir), "-o", str(tmp_path / "x" / "r.md"), "--format", "md"]) == 0
    assert (tmp_path / "x" / "r.md").read_text().startswith("# kdbench report")
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["report", str(run_dir), "--format", "pdf"]) == 2


def test_the_teacher_does_not_set_the_scale_of_a_plot():
    import pandas as pd
    from matplotlib.figure import Figure

    from kdbench.reports.plots import _draw

    def series(*acc):
        x = np.arange(len(acc), dtype=float)
        a = np.array(acc)
        return pd.DataFrame({"x": x, "accuracy": a, "band_lo": a - 0.01, "band_hi": a + 0.01})

    ax = Figure().subplots()
    _draw(ax, series(0.48, 0.46, 0.39), "baseline", "b")
    _draw(ax, series(0.48, 0.47, 0.43), "distilled", "d")
    _draw(ax, series(0.864), "teacher", "t (teacher)")
    assert ax.get_ylim()[1] < 55  # a 2 pp gap between students at 48% stays visible
    assert ax.get_legend_handles_labels()[1][-1] == "t (teacher), clean 86.4%"


def test_the_heat_map_shows_distilled_minus_baseline(tmp_path):
    pieces = fakerun.fake_results(n=200, seeds=(0,), corruptions=True)
    data = tables.build(load_run(fakerun.write(tmp_path / "run", pieces)))
    from kdbench.reports.run_plots import corruption_differences, heatmap

    diffs = corruption_differences(data)
    assert list(diffs.columns) == [f"{KD} − {BASE}"] and len(diffs) == 15
    by_hand = (
        pieces.metrics[pieces.metrics["group"] == "corruption"]
        .groupby(["condition", "model"])["accuracy"]
        .mean()
        .unstack()
    )
    np.testing.assert_allclose(diffs[f"{KD} − {BASE}"].sort_index(), (by_hand[KD] - by_hand[BASE]).sort_index())
    assert diffs.abs().to_numpy().max() > 0 and heatmap(data).startswith("data:image/svg+xml;base64,")
