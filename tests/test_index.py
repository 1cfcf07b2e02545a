"""The runs index: every run folder's rows in one SQLite file, re-indexing idempotent, deleted runs
dropped, half-written ones skipped, writers at once losing nothing, bad index files refused."""

import multiprocessing
import shutil
import sqlite3

import pandas as pd
import pytest
from fakerun import fake_results, write

import kdbench
from kdbench.cli import main
from kdbench.index import IndexFileError, index_runs, read_table
from kdbench.reports.tables import build
from kdbench.reports.verdicts import pair_verdicts
from kdbench.results.checks import load_run


@pytest.fixture
def results(tmp_path):
    """results/fake/run-a and run-b (3 seeds, different data), a `latest` link and a cache folder."""
    root = tmp_path / "results"
    for name, seed in (("run-a", 0), ("run-b", 1)):
        write(root / "fake" / name, fake_results(seeds=(0, 1, 2), seed=seed))
    (root / "fake" / "latest").symlink_to("run-b")
    (root / "_cache" / "jobs" / "x").mkdir(parents=True)
    return root


def test_every_run_folder_goes_in_once_with_all_its_rows(results):
    db = results / "runs.sqlite"
    done = index_runs(db, [results], log=lambda _: None)
    assert [p.rsplit("/", 1)[-1] for p in done["indexed"]] == ["run-a", "run-b"]  # not latest, not _cache
    runs = kdbench.runs(db)
    assert sorted(runs.run_id) == ["run-a", "run-b"] and set(runs.suite) == {"fake"}
    for path in runs.path:
        run = load_run(path)
        m = read_table(db, "metrics")
        mine = m[m.path == path].drop(columns="path").reset_index(drop=True)
        want = run.metrics[mine.columns.tolist()].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, want, check_dtype=False)
        v = read_table(db, "verdicts")
        findings = [(pv.distilled, f.question, f.verdict) for pv in pair_verdicts(build(run)) for f in pv.findings]
        assert list(zip(*[v[v.path == path][c] for c in ("distilled", "question", "verdict")])) == findings
    before = {t: len(read_table(db, t)) for t in ("runs", "metrics", "verdicts")}
    index_runs(db, [results], log=lambda _: None)  # again: the same rows, not twice as many
    assert {t: len(read_table(db, t)) for t in before} == before


def test_a_deleted_run_drops_out_and_a_half_written_one_is_skipped(results, capsys):
    db = results / "runs.sqlite"
    index_runs(db, [results], log=lambda _: None)
    shutil.rmtree(results / "fake" / "run-a")
    half = results / "fake" / "run-c"
    shutil.copytree(results / "fake" / "run-b", half)
    (half / "metrics.csv").write_text("model,seed\n")  # a run folder caught mid-write
    assert main(["index", str(results)]) == 0
    out, err = capsys.readouterr()
    assert f"skipped {half}: not a complete run" in err and "dropped" in err and "run-a" in err
    assert "1 indexed, 1 skipped, 1 dropped" in out
    assert [p.rsplit("/", 1)[-1] for p in kdbench.runs(db).path] == ["run-b"]
    assert set(read_table(db, "metrics").path) == set(kdbench.runs(db).path)


def _index_one(args):
    db, folder = args
    index_runs(db, [folder], log=lambda _: None)


def test_writers_at_once_lose_nothing(tmp_path):
    folders = []
    for k in range(6):
        folders.append(tmp_path / "results" / "fake" / f"run-{k}")
        write(folders[-1], fake_results(seeds=(0,), seed=k))
    db = tmp_path / "results" / "runs.sqlite"
    with multiprocessing.get_context("fork").Pool(6) as pool:  # six processes make and fill one new file
        pool.map(_index_one, [(db, f) for f in folders])
    assert sorted(kdbench.runs(db).run_id.index) == list(range(6))
    per_run = read_table(db, "metrics").groupby("path").size()
    assert len(per_run) == 6 and per_run.nunique() == 1


def test_a_bad_or_newer_index_file_is_refused_with_what_to_do(results, capsys):
    bad = results / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    assert main(["index", str(results), "--db", str(bad)]) == 2
    assert "not a readable runs index" in capsys.readouterr().err and bad.read_bytes().startswith(b"this is not")
    newer = results / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute("PRAGMA user_version = 99")
    assert main(["index", str(results), "--db", str(newer)]) == 2
    assert "written by a newer kdbench (index schema 99" in capsys.readouterr().err
    with pytest.raises(IndexFileError, match="no runs index there"):
        kdbench.runs(results / "absent.sqlite")
    index_runs(results / "runs.sqlite", [results], log=lambda _: None)
    with pytest.raises(IndexFileError, match="no table 'nope'"):
        kdbench.runs(results / "runs.sqlite", "nope")
    assert main(["index", str(results / "nowhere")]) == 2
    assert not (results / "nowhere").exists()  # nothing made for a bad input
