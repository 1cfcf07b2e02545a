"""The leaderboard: one row per network with its seeds pooled, one table per evaluation
specification, a self-contained page that Chromium sorts and filters under a CSP that lets only
its own script run, and the same table in Markdown."""

import numpy as np
import pytest
from browser import find_chromium, load_page
from fakerun import fake_results, write
from needs import require

from kdbench.cli import main
from kdbench.index.database import index_runs, read_table
from kdbench.index.leaderboard import build

TABLES = ("runs", "metrics", "summary", "model_metrics", "verdicts")


@pytest.fixture
def results(tmp_path):
    """Two runs of the same networks under one specification (3 and 3 seeds, the second run the
    later), and one run under another."""
    root = tmp_path / "results"
    for name, seed, spec, hour in (
        ("run-a", 0, "spec-v1", 9),
        ("run-b", 0, "spec-v1", 10),
        ("run-c", 1, "spec-v2", 11),
    ):
        pieces = fake_results(seeds=(0, 1, 2), seed=seed, eval_spec_hash=spec)
        pieces.manifest["finished"] = f"2026-12-02T{hour:02d}:00:00+00:00"
        write(root / "fake" / name, pieces)
    index_runs(root / "runs.sqlite", [root], log=lambda _: None)
    return root


def test_one_row_per_network_seeds_pooled_one_table_per_specification(results):
    groups = build({t: read_table(results / "runs.sqlite", t) for t in TABLES})
    assert [g.spec for g in groups] == ["spec-v1", "spec-v2"]
    assert [len(g.runs) for g in groups] == [2, 1]  # the page says which runs are comparable
    first = groups[0]
    assert [r["model"]["text"] for r in first.rows] == ["wrn40_2-teacher", "resnet20-baseline", "resnet20-kd"]
    kd = next(r for r in first.rows if r["model"]["text"] == "resnet20-kd")
    m = read_table(results / "runs.sqlite", "metrics")
    mine = m[(m.model == "resnet20-kd") & (m.condition == "clean") & m.path.str.endswith("run-b")]
    assert kd["seeds"]["value"] == 3 and kd["clean"]["value"] == pytest.approx(np.mean(mine.accuracy))
    assert [c.label for c in first.columns][5] == "clean %" and not any("fgsm" in c.key for c in first.columns)
    assert kd["delta_clean"]["text"].endswith(("higher", "lower", "too few seeds to tell", "no detectable difference"))


def test_a_masking_flag_rides_on_the_difference(results):
    tables = {t: read_table(results / "runs.sqlite", t) for t in TABLES}
    v = tables["verdicts"]
    v.loc[v.question == "clean accuracy", "masking"] = "gradient masking suspected (resnet20-kd: unbounded)"
    kd = next(r for r in build(tables)[0].rows if r["model"]["text"] == "resnet20-kd")
    assert kd["delta_clean"]["flag"] and "⚠ masking suspected" in kd["delta_clean"]["text"]


def test_a_difference_without_an_interval_shows_none(results):
    tables = {t: read_table(results / "runs.sqlite", t) for t in TABLES}
    v = tables["verdicts"]
    v.loc[v.question == "clean accuracy", ["ci_lo", "ci_hi"]] = np.nan  # one seed a side
    kd = next(r for r in build(tables)[0].rows if r["model"]["text"] == "resnet20-kd")
    assert "nan" not in kd["delta_clean"]["text"] and "[" not in kd["delta_clean"]["text"]


def test_the_page_sorts_and_filters_in_chromium_with_nothing_fetched(results, tmp_path):
    require(find_chromium() is not None, "Chromium", "apt-get install chromium")
    page = tmp_path / "board.html"
    assert main(["leaderboard", str(results), "-o", str(page)]) == 0
    html = page.read_text()
    assert "script-src 'sha256-" in html and html.count("<script>") == 1
    first_col = "Array.from(document.querySelector('table.board').tBodies[0].rows).map(r => r.cells[0].textContent)"
    clean = "document.querySelectorAll('table.board')[0].tHead.rows[0].cells[5]"
    visible = "Array.from(document.querySelector('table.board').tBodies[0].rows).filter(r => !r.hidden).length"
    report = load_page(
        page,
        run=(
            first_col,
            f"{clean}.click(), {first_col}",
            f"{clean}.click(), {first_col}",
            "(b => { b.value = 'resnet20 kd'; b.dispatchEvent(new Event('input')); })"
            "(document.querySelector('input.filter')), " + visible,
            "document.querySelector('table.board a').getAttribute('href')",
        ),
    )
    assert report.foreign_requests() == [] and report.console == [] and report.dialogs == []
    unsorted, down, up, shown, link = report.ran
    m = read_table(results / "runs.sqlite", "metrics")
    clean_of = m[(m.condition == "clean") & m.path.str.endswith("run-b")].groupby("model").accuracy.mean()
    assert down == sorted(unsorted, key=lambda k: -clean_of[k]) and up == down[::-1]
    assert shown == 1  # only resnet20-kd has both words
    assert link.startswith("board_reports/") and (tmp_path / link).is_file()
    assert (
        "Evaluation specification spec-v2" in report.text
        and "Comparable runs: fake / run-a; fake / run-b" in report.text
    )


def test_the_markdown_table(results, tmp_path):
    out = tmp_path / "board.md"
    assert main(["leaderboard", str(results / "runs.sqlite"), "--format", "md", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.count("## Evaluation specification") == 2 and "| resnet20-kd | kd | resnet20 |" in text
    assert main(["leaderboard", str(tmp_path / "nowhere")]) == 2
