"""The runs database: every run directory's manifest, metrics, model metrics, corruption summary,
masking checks and verdicts in one SQLite file, for SQL, `kdbench.runs()` and the leaderboard.

SQLite because several `kdbench run`s may index into one file at once: its own locking (one
writer at a time, the others wait up to `TIMEOUT_S`) loses nothing, and Python ships it. A run is
keyed by its folder's absolute path: indexing it again replaces its rows in one transaction, and
a run whose folder is gone is dropped whenever the index is updated.

Tables (`PRAGMA user_version` = SCHEMA_VERSION):
    runs(path, run_id, suite, dataset, started, finished, kdbench_version, eval_spec_hash,
         device, manifest, indexed_at)
    metrics(path, <metrics.csv's columns>)             model_metrics(path, <model_metrics.csv's>)
    summary(path, <summary.csv's>)                     diagnostics(path, <diagnostics.csv's>)
    verdicts(path, distilled, baseline, role, arch, seeds, question, verdict, diff, ci_lo,
             ci_hi, mdd, masking): the report's findings, one per pair and question
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from kdbench.util.errors import UserError
from kdbench.util.lazy import lazy
from kdbench.util.names import INDEX_FILE

pd = lazy("pandas")

SCHEMA_VERSION = 1
# `PRAGMA application_id` of every index kdbench makes ("kdbn"): a SQLite file without it, and with
# tables that are not an index's, is someone else's and is left alone
APPLICATION_ID = int.from_bytes(b"kdbn", "big")
FILE_NAME = INDEX_FILE
TIMEOUT_S = 120.0  # how long a writer waits for another one

RESULT_TABLES = {
    "metrics": "model, role, method, arch, seed, condition, grp, level, n, correct, accuracy",
    "model_metrics": "model, role, method, arch, seed, condition, grp, level, metric, value, n, reference, temperature",
    "summary": "model, seed, statistic, corruption, value, cells",
    "diagnostics": "model, seed, check_name, eps, value, threshold, flagged, norm",
    "verdicts": "distilled, baseline, role, arch, seeds, question, verdict, diff, ci_lo, ci_hi, mdd, masking",
}
RUN_COLUMNS = (
    "path, run_id, suite, dataset, started, finished, kdbench_version, eval_spec_hash, device, manifest, indexed_at"
)
# SQL words and column names that differ from the CSV files' ("group" and "check" are keywords)
RENAMED = {"group": "grp", "check": "check_name"}


class IndexFileError(UserError):
    """An index file kdbench cannot use: corrupted, or written by a newer kdbench."""


def _schema() -> list[str]:
    statements = [f"CREATE TABLE IF NOT EXISTS runs ({RUN_COLUMNS.replace('path', 'path TEXT PRIMARY KEY', 1)})"]
    for name, columns in RESULT_TABLES.items():
        statements.append(f"CREATE TABLE IF NOT EXISTS {name} (path TEXT NOT NULL, {columns})")
        statements.append(f"CREATE INDEX IF NOT EXISTS {name}_path ON {name} (path)")
    return statements + [f"PRAGMA user_version = {SCHEMA_VERSION}", f"PRAGMA application_id = {APPLICATION_ID}"]


def _foreign(con: sqlite3.Connection) -> list[str] | None:
    """The tables of a SQLite file kdbench did not write (None when it is an index, or empty)."""
    if con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
        return None
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables or tables == {"runs", *RESULT_TABLES}:  # empty, or an index from before application_id
        return None
    return sorted(tables)


def connect(db: Path, create: bool = True) -> sqlite3.Connection:
    """The index at `db`, created (with its schema) when absent and `create`; an IndexFileError naming
    the file and what to do when it is not a kdbench index of this version or older."""
    db = Path(db)
    if not create and not db.is_file():
        raise IndexFileError(f"{db}: no runs index there; make one with kdbench index DIR (or kdbench run --out DIR)")
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db, timeout=TIMEOUT_S, isolation_level=None)
    try:
        foreign = _foreign(con)
        if foreign is not None:
            raise IndexFileError(
                f"{db}: a SQLite file kdbench did not write (tables: {', '.join(foreign[:8])}"
                f"{', ...' if len(foreign) > 8 else ''}); kdbench leaves it alone: give another index file "
                "(--db FILE, or another --out)"
            )
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise IndexFileError(
                f"{db}: written by a newer kdbench (index schema {version}; this one reads {SCHEMA_VERSION}); "
                "upgrade kdbench, or delete the file and run kdbench index DIR to rebuild it from the run folders"
            )
        if version == 0:
            con.execute("BEGIN IMMEDIATE")  # one process makes the schema; the others wait, then find it
            if con.execute("PRAGMA user_version").fetchone()[0] == 0:
                for statement in _schema():
                    con.execute(statement)
            con.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        con.close()
        raise IndexFileError(
            f"{db}: not a readable runs index ({exc}); delete it and run kdbench index DIR to rebuild it "
            "from the run folders (it holds nothing they do not)"
        ) from None
    except BaseException:
        con.close()
        raise
    return con


def find_runs(root: Path) -> list[Path]:
    """Run folders at or under `root` (a folder holding manifest.json), skipping caches (`_*`),
    hidden folders, unfinished `*.part` folders and links (`latest`), sorted."""
    root = Path(root)
    if (root / "manifest.json").is_file():
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(("_", ".")) and ".part" not in d and not os.path.islink(os.path.join(dirpath, d))
        )
        if "manifest.json" in filenames and Path(dirpath) != root:
            found.append(Path(dirpath))
            dirnames[:] = []  # a run folder holds no runs
    return sorted(found)


def _rows(path: str, frame, columns: str) -> list[tuple]:
    names = [c.strip() for c in columns.split(",")]
    frame = frame.rename(columns=RENAMED)
    out = []
    for rec in frame[names].itertuples(index=False, name=None):
        out.append((path, *[_plain(v) for v in rec]))
    return out


def _plain(v):
    """A value SQLite stores: numpy scalars as Python numbers, NaN as NULL."""
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _verdict_rows(run) -> list[dict]:
    from kdbench.reports.verdicts import run_verdicts

    columns = [c.strip() for c in RESULT_TABLES["verdicts"].split(",")]
    rows = []
    for pv in run_verdicts(run):
        for f in pv.findings:
            values = (pv.distilled, pv.baseline, pv.kind, pv.arch, pv.seeds, f.question, f.verdict)
            rows.append(dict(zip(columns, (*values, f.diff, f.lo, f.hi, f.mdd, f.masking))))
    return rows


def record(con: sqlite3.Connection, run) -> None:
    """Replace the index's rows of `run` (a checked results.contract.Run) in one transaction."""
    path = str(Path(run.path).resolve())
    m = run.manifest
    suite = m.get("suite") if isinstance(m.get("suite"), dict) else {}
    tables = {
        "metrics": run.metrics,
        "model_metrics": run.model_metrics,
        "summary": run.summary,
        "diagnostics": run.diagnostics,
        "verdicts": pd.DataFrame(_verdict_rows(run), columns=[c.strip() for c in RESULT_TABLES["verdicts"].split(",")]),
    }
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run_row = (
        path,
        m.get("run_id") or Path(path).name,
        m.get("suite_name") or suite.get("name"),
        (suite.get("dataset") or {}).get("name"),
        m.get("started"),
        m.get("finished"),
        m.get("kdbench_version"),
        m.get("eval_spec_hash"),
        m.get("device"),
        json.dumps(m, sort_keys=True, default=str),
        now,
    )
    con.execute("BEGIN IMMEDIATE")
    try:
        _delete(con, path)
        con.execute(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * len(run_row))})", run_row)
        for name, frame in tables.items():
            if frame is None or len(frame) == 0:
                continue
            columns = RESULT_TABLES[name]
            rows = _rows(path, frame, columns)
            marks = ", ".join("?" * (len(rows[0])))
            con.executemany(f"INSERT INTO {name} (path, {columns}) VALUES ({marks})", rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _delete(con: sqlite3.Connection, path: str) -> None:
    for name in ("runs", *RESULT_TABLES):
        con.execute(f"DELETE FROM {name} WHERE path = ?", (path,))


def drop_missing(con: sqlite3.Connection) -> list[str]:
    """Remove the runs whose folder no longer exists; returns their paths."""
    gone = [p for (p,) in con.execute("SELECT path FROM runs").fetchall() if not (Path(p) / "manifest.json").is_file()]
    if gone:
        con.execute("BEGIN IMMEDIATE")
        try:
            for p in gone:
                _delete(con, p)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return gone


def index_runs(db: Path, roots, log=print) -> dict:
    """Record every run folder at or under `roots` into the index `db` (made when absent), and drop
    the runs whose folders are gone. A folder that is not a complete run is skipped with a line.
    Returns {"indexed": [...], "skipped": [...], "dropped": [...]}."""
    from kdbench.results.checks import load_run
    from kdbench.results.contract import ResultsError

    done = {"indexed": [], "skipped": [], "dropped": []}
    missing = [str(r) for r in roots if not Path(r).is_dir()]
    if missing:  # said before the index file is made
        raise IndexFileError(f"{missing[0]}: no such folder to index (a run folder, or one holding runs)")
    with closing(connect(db)) as con:
        for root in roots:
            for folder in find_runs(Path(root)):
                try:
                    record(con, load_run(folder))
                except ResultsError as exc:
                    log(f"skipped {folder}: not a complete run ({exc})")
                    done["skipped"].append(str(folder))
                    continue
                except (sqlite3.Error, IndexFileError):
                    raise
                except Exception as exc:  # noqa: BLE001 - one odd run folder must not stop the others
                    log(f"skipped {folder}: could not be indexed ({type(exc).__name__}: {exc})")
                    done["skipped"].append(str(folder))
                    continue
                done["indexed"].append(str(Path(folder).resolve()))
        done["dropped"] = drop_missing(con)
    for p in done["dropped"]:
        log(f"dropped {p}: its folder is gone")
    return done


def read_table(db: Path, table: str = "runs"):
    """One table of the index as a DataFrame (`group` and `check` under their CSV names)."""
    if table not in ("runs", *RESULT_TABLES):
        raise IndexFileError(f"no table '{table}' in a runs index; tables: runs, {', '.join(RESULT_TABLES)}")
    with closing(connect(Path(db), create=False)) as con:
        frame = pd.read_sql_query(f"SELECT * FROM {table}", con)  # noqa: S608 - the name is one of ours
    return frame.rename(columns={v: k for k, v in RENAMED.items()})


def default_db(roots) -> Path:
    """Where an index of `roots` lives by default: beside the results, in the first root (or the
    `--out` of a run folder given directly)."""
    first = Path(roots[0])
    return (first.parent.parent if (first / "manifest.json").is_file() else first) / FILE_NAME
