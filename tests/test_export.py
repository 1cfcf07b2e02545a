"""kdbench export: the headline table as CSV and LaTeX, the report as JSON, RobustBench model info."""

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from fakerun import MODELS, fake_results, write
from needs import require

from kdbench.cli import main
from kdbench.exports import export
from kdbench.exports.headline import COLUMNS
from kdbench.exports.robustbench import MODEL_INFO_FIELDS
from kdbench.reports.tables import build
from kdbench.reports.verdicts import pair_verdicts
from kdbench.results.checks import load_run
from kdbench.util.names import attack_condition


def with_autoattack(pieces, levels, version="standard", norm="Linf"):
    """AutoAttack rows copied from the strongest PGD row (one example fewer right per level step)."""
    new_rows, new_correct = [], []
    for rows in pieces.metrics.groupby(["model", "seed"]).groups.values():
        src = [r for r in rows if pieces.metrics.loc[r, "condition"] == "pgd"][-1]
        for k, level in enumerate(levels):
            ok = pieces.correct[src].copy()
            ok[np.flatnonzero(ok)[: k + 1]] = False
            row = pieces.metrics.loc[src].copy()
            row["condition"], row["level"] = attack_condition("autoattack", norm), format(level, ".6g")
            new_rows.append(row)
            new_correct.append(ok)
    pieces.metrics = pd.concat([pieces.metrics, pd.DataFrame(new_rows)], ignore_index=True)
    pieces.correct = np.vstack([pieces.correct, np.array(new_correct)])
    pieces.resync()
    entry = {"eps": [float(v) for v in levels], "version": version} | ({"norm": norm} if norm != "Linf" else {})
    pieces.manifest["suite"]["evaluate"]["autoattack" if norm == "Linf" else "robust"] = entry
    pieces.manifest["suite"]["dataset"] = {"name": "cifar10"}
    return pieces


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    models = [(*m[:4], 0.92) if m[1] == "distilled" else m for m in MODELS]  # a KD student clearly better on some rows
    pieces = with_autoattack(fake_results(seeds=(0, 1, 2), models=models, corruptions=True), [4 / 255, 8 / 255])
    path = tmp_path_factory.mktemp("export") / "fake" / "run1"
    write(path, pieces)
    return path


@pytest.fixture(scope="module")
def data(run_dir):
    return build(load_run(run_dir))


def test_csv_is_the_reports_headline_table(run_dir, data, tmp_path):
    (out,) = export(run_dir, "csv", tmp_path / "t.csv")
    t = pd.read_csv(out, dtype={"level": str}, keep_default_na=False, na_values=[""])
    assert list(t.columns) == COLUMNS
    pair = data.pairs[0]
    headline = pair.table[pair.table["group"] != "corruption"]
    assert len(t) == len(headline) and "corruption" not in set(t["group"])
    assert list(t["group"].drop_duplicates()) == ["clean", "mean_corruption", "noise", "attack"]
    for _, r in headline.iterrows():
        row = t[(t["condition"] == r["condition"]) & (t["level"].fillna("") == r["level"])].iloc[0]
        assert row["distilled_acc"] == pytest.approx(r["dist_acc"], abs=1e-6) and row["diff"] == pytest.approx(
            r["diff"], abs=1e-6
        )
        assert row["p_holm"] == pytest.approx(r["p_holm"], rel=1e-5) and row["verdict"] == r["verdict"]


def test_latex_is_booktabs_escaped_and_marked(run_dir, data, tmp_path):
    (out,) = export(run_dir, "latex", tmp_path / "t.tex")
    text = out.read_text()
    body = [line for line in text.splitlines() if not line.startswith("%")]
    assert body[0] == r"\begin{tabular}{llrrrrr}" and body[-1] == r"\end{tabular}"
    assert {r"\toprule", r"\midrule", r"\bottomrule"} <= set(body)
    rows = [line for line in body if line.endswith(r"\\") and "Baseline" not in line]
    assert len(rows) == len(pd.read_csv(export(run_dir, "csv", tmp_path / "t.csv")[0]))
    for line in body:  # no bare % or _ outside math, no unicode, to break the build
        text_mode = re.sub(r"\$[^$]*\$", "", line)
        assert "%" not in text_mode.replace(r"\%", "") and "_" not in text_mode.replace(r"\_", "") and line.isascii(), (
            line
        )
    assert r"resnet20-kd vs resnet20-baseline" in text and r"$\varepsilon$=8/255" in text
    table = data.pairs[0].table
    significant = table[(table["group"] != "corruption") & (table["p_holm"] < 0.05)]
    assert len(significant) and text.count("^{*") == len(significant)  # one mark per significant headline row


def test_latex_compiles(run_dir, tmp_path):
    require(
        shutil.which("pdflatex") is not None, "a TeX engine (pdflatex)", "apt-get install texlive-latex-recommended"
    )
    export(run_dir, "latex", tmp_path / "table.tex")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\begin{document}"
        "\\begin{table}\\input{table.tex}\\end{table}\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_json_holds_what_the_report_shows(run_dir, data, tmp_path):
    (out,) = export(run_dir, "json", tmp_path / "r.json")

    def no_nan(value):
        raise AssertionError(f"{value} in JSON")

    d = json.loads(out.read_text(), parse_constant=no_nan)
    assert (d["schema"], d["version"]) == ("kdbench-report", 1)
    assert [v["sentence"] for v in d["verdicts"]] == [v.sentence() for v in pair_verdicts(data)]
    pair = d["pairs"][0]
    assert (pair["distilled"], pair["baseline"], pair["baseline_seeds"]) == (
        "resnet20-kd",
        "resnet20-baseline",
        [0, 1, 2],
    )
    assert len(pair["metrics"]) == len(data.pairs[0].table) and len(pair["per_seed"]) == len(data.pairs[0].per_seed)
    clean = next(m for m in pair["metrics"] if m["condition"] == "clean")
    assert clean["dist_acc"] == pytest.approx(float(data.pairs[0].table.iloc[0]["dist_acc"]))
    assert len(d["per_seed"]) == len(data.per_seed) and d["holm"]["headline"] == data.holm_family
    assert d["provenance"]["versions"]["torch"] == "2.4.0" and d["provenance"]["suite"]["name"] == "fake"


def test_robustbench_files_follow_model_info(run_dir, data, tmp_path):
    written = export(run_dir, "robustbench", tmp_path / "rb")
    names = sorted(p.relative_to(tmp_path / "rb").as_posix() for p in written)
    assert "cifar10/Linf/resnet20-kd_seed2.json" in names and "cifar10/corruptions/wrn40_2-teacher_seed0.json" in names
    assert len(names) == 2 * (1 + 3 + 3)  # every network, both threat models
    info = json.loads((tmp_path / "rb" / "cifar10" / "Linf" / "resnet20-kd_seed1.json").read_text())
    assert tuple(info) == MODEL_INFO_FIELDS
    m = data.run.metrics
    rows = m[(m.model == "resnet20-kd") & (m.seed == 1)]
    aa = rows[(rows.condition == "autoattack") & (rows.level == format(8 / 255, ".6g"))].accuracy.iloc[0]
    assert info["eps"] == 8 / 255 and info["autoattack_acc"] == str(round(aa * 100, 2))  # RobustBench's own format
    assert info["clean_acc"] == str(round(rows[rows.condition == "clean"].accuracy.iloc[0] * 100, 2))
    assert (info["dataset"], info["architecture"], info["corruptions_acc"]) == ("cifar10", "resnet20", None)
    corr = json.loads((tmp_path / "rb" / "cifar10" / "corruptions" / "resnet20-kd_seed1.json").read_text())
    cells = rows[rows.group == "corruption"]
    assert len(cells) == 75 and corr["corruptions_acc"] == str(round(cells.accuracy.mean() * 100, 2))
    assert corr["corruptions_mce"] is None and corr["autoattack_acc"] is None


def test_robustbench_l2_files_sit_in_their_own_folder(tmp_path):
    # Linf AutoAttack at 8/255 and L2 (the robust preset's, standard) at 0.25 and 0.5 in one run
    pieces = with_autoattack(fake_results(seeds=(0,)), [8 / 255])
    pieces = with_autoattack(pieces, [0.25, 0.5], norm="L2")
    write(tmp_path / "fake" / "run", pieces)
    written = export(tmp_path / "fake" / "run", "robustbench", tmp_path / "rb")
    names = {p.relative_to(tmp_path / "rb").as_posix() for p in written}
    assert names == {f"cifar10/{n}/{m[0]}_seed0.json" for n in ("Linf", "L2") for m in MODELS}
    m = pieces.metrics
    for norm, eps, condition in (("Linf", 8 / 255, "autoattack"), ("L2", 0.5, "autoattack_l2")):
        info = json.loads((tmp_path / "rb" / "cifar10" / norm / "resnet20-kd_seed0.json").read_text())
        row = m[(m.model == "resnet20-kd") & (m.condition == condition) & (m.level == format(eps, ".6g"))]
        assert info["eps"] == eps and info["autoattack_acc"] == str(round(row.accuracy.iloc[0] * 100, 2))
        assert f"standard, {norm}" in info["footnote"]


def test_robustbench_corruptions_mce_is_the_published_tables_over_all_75_cells():
    from kdbench.exports.robustbench import published_mce_of

    summary = pd.DataFrame(
        [
            ("a", 0, "mce_published", "all", 61.234, 75),
            ("b", 0, "mce_published", "all", 70.0, 70),  # a corruption short: not RobustBench's number
            ("a", 0, "mce", "all", 99.0, 75),
        ],
        columns=["model", "seed", "statistic", "corruption", "value", "cells"],
    )
    assert published_mce_of(summary, "a", 0) == 61.234 and published_mce_of(summary, "b", 0) is None
    assert published_mce_of(None, "a", 0) is None


def test_robustbench_fields_are_the_installed_packages():
    import dataclasses
    import importlib.util

    if importlib.util.find_spec("robustbench") is None:
        pytest.skip("robustbench not installed")
    from kdbench.models.zoo import _robustbench

    assert tuple(f.name for f in dataclasses.fields(_robustbench().utils.ModelInfo)) == MODEL_INFO_FIELDS


def test_robustbench_needs_standard_autoattack_and_all_corruption_cells(tmp_path):
    pieces = with_autoattack(fake_results(seeds=(0,), corruptions=True), [8 / 255], version="custom")
    drop = pieces.rows(condition="c:fog", level="5")
    keep = np.setdiff1d(np.arange(len(pieces.metrics)), drop)
    pieces.metrics, pieces.correct = pieces.metrics.iloc[keep].reset_index(drop=True), pieces.correct[keep]
    write(tmp_path / "fake" / "run", pieces)
    assert export(tmp_path / "fake" / "run", "robustbench", tmp_path / "rb") == []


def test_cli_export_and_its_errors(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--format", "csv", "-o", str(tmp_path / "x.csv")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "x.csv")
    assert main(["export", str(run_dir), "--format", "csv", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    (tmp_path / "f").write_text("x")
    assert main(["export", str(run_dir), "--format", "robustbench", "-o", str(tmp_path / "f")]) == 2
    assert main(["export", str(tmp_path / "nope"), "--format", "json", "-o", str(tmp_path / "n.json")]) == 2
    assert not (tmp_path / "n.json").exists()
