"""The published answer: the docs page is computed from the committed run directory, and the
README quotes that run's verdicts word for word, so neither can drift from the run."""

import re
import sys
from pathlib import Path

import pytest
from fakerun import fake_results, write

from kdbench.reports.published import answer, published_page
from kdbench.reports.tables import build
from kdbench.results.read import read_run

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "results" / "published" / "cifar_noise"


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("published") / "run"
    write(path, fake_results(seeds=(0, 1, 2)))
    return path


def test_the_page_holds_the_runs_verdicts_tables_and_figures(fake_dir):
    page = published_page(fake_dir)
    sentences = answer(build(read_run(fake_dir)))
    assert sentences and all(s.replace("[", "\\[").replace("]", "\\]") in page for s in sentences)
    assert page.startswith("## The answer\n")
    for heading in ("## The run", "## The report", "### At a glance", "## Figures"):
        assert f"\n{heading}\n" in page
    assert "| metric | baseline |" in page and 'src="data:image/svg+xml;base64,' in page
    assert "Scored on" in page


def test_the_docs_hook_renders_a_run_and_a_leaderboard(fake_dir, monkeypatch):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    monkeypatch.setattr(hooks, "ROOT", str(fake_dir.parent))
    page = hooks.on_page_markdown("# Results\n\n<!-- published: run -->\n")
    assert "## The answer" in page and "<!-- published" not in page
    board = hooks.on_page_markdown("<!-- leaderboard: run -->\n")
    assert "resnet20-kd" in board and "Comparable runs:" in board
    assert not (fake_dir / "runs.sqlite").exists() and not (fake_dir.parent / "runs.sqlite").exists()


@pytest.mark.skipif(not (PUBLISHED / "manifest.json").is_file(), reason="no published run committed")
def test_readme_quotes_the_published_verdicts():
    run = read_run(PUBLISHED)
    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text(encoding="utf-8"))
    kd = answer(build(run))[0]
    assert kd in readme, f"README's answer is not the published run's: expected {kd!r}"
    assert run.manifest["suite_name"] == "cifar_noise" and len(run.example_index) == 10_000
