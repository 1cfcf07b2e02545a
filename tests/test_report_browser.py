"""The HTML report in a real browser: headless Chromium over the DevTools protocol (tests/browser.py).

Skipped when no Chromium is installed, except under CI=true, where CI installs it and its
absence is a failure. Set KDBENCH_SCREENSHOT_DIR to keep the screenshots.
"""

import os
import shutil
from pathlib import Path

import fakerun
import pytest
from browser import blankness, find_chromium, load_page
from needs import require

from kdbench.reports import write_report

EVIL = "<script>alert(1)</script>"
CHROMIUM = find_chromium()


@pytest.fixture(autouse=True, scope="module")
def chromium():
    require(CHROMIUM is not None, "Chromium", "apt-get install chromium")
    return CHROMIUM


def keep(path: Path) -> None:
    target = os.environ.get("KDBENCH_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    models = (
        ("wrn40_2-teacher", "teacher", "teacher", "wrn40_2", 0.93),
        ("resnet20-baseline", "baseline", "baseline", "resnet20", 0.85),
        ("resnet20-kd", "distilled", "kd", "resnet20", 0.87),
    )
    pieces = fakerun.fake_results(n=400, seeds=(0, 1), models=models, corruptions=True)
    pieces.manifest["suite_name"] = EVIL  # model names cannot carry markup (read_run refuses them); free text can
    html = write_report(fakerun.write(tmp / "run", pieces), tmp / "report.html")
    page = load_page(html, CHROMIUM)
    shot = tmp / "report.png"
    shot.write_bytes(page.screenshot)
    keep(shot)
    return page


def test_the_report_requests_nothing_over_the_network(report):
    assert report.requests[0] == report.url  # the page itself was seen: the recorder works
    assert report.foreign_requests() == []
    assert sum(u.startswith("data:image/svg+xml") for u in report.requests) == 6


def test_the_report_is_not_blank(report):
    b = blankness(report.screenshot)
    assert b["size"] == (1000, 1280)
    assert b["off_background"] > 0.03 and b["colours"] > 50, b
    assert report.height > 3000  # tables and five figures below the fold
    assert report.images == 6 and report.images_ok == 6  # every inline figure decoded


def test_the_verdict_block_comes_first(report):
    text = report.text
    assert text.index("At a glance") < text.index("Models") < text.index("resnet20-kd vs resnet20-baseline\n")
    assert "resnet20-kd vs resnet20-baseline (resnet20, 2 seeds): " in text


def test_html_in_the_manifest_is_shown_as_text_and_never_runs(report):
    assert report.scripts == 0
    assert report.dialogs == [] and report.console == []
    assert f"kdbench report: {EVIL} / run" in report.text  # the browser shows it literally


def test_the_recorder_sees_requests_and_scripts_when_there_are_some(tmp_path):
    """Negative control: the same checks fail on a page that fetches and runs something."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><head><link rel=stylesheet href='http://127.0.0.1:9/x.css'></head>"
        "<body><p>bad</p><img src='https://example.invalid/x.png'><script>alert('ran')</script></body></html>"
    )
    rep = load_page(page, CHROMIUM)
    assert set(rep.foreign_requests()) == {"http://127.0.0.1:9/x.css", "https://example.invalid/x.png"}
    assert rep.scripts == 1 and rep.dialogs == ["ran"]
