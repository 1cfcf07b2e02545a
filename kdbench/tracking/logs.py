"""Where the backends are called: a model's logs, opened where it trains (the driver, a worker
process or a Ray task) and again at the run's end for its final metrics; the run's start and end.
A backend that fails costs a line and its own records, never the run."""

from __future__ import annotations

import dataclasses
import importlib
import json
import tempfile
from pathlib import Path
from typing import Callable

from kdbench.tracking.session import Tracking
from kdbench.tracking.values import epoch_values, final_values, params_of


def backend(name: str):
    return importlib.import_module(f"kdbench.tracking.{name}")


def model_name(model: str, seed: int) -> str:
    return f"{model}:seed{seed}"


class ModelLogs:
    """One model's log in every backend of the run (none when `tracking` is None)."""

    def __init__(self, tracking: Tracking | None, job, runner, say: Callable[[str], None], backends=None):
        """`runner` (pipeline.jobs.JobRunner) resolves the model's role and its job's parameters."""
        self.say, self.name, self.logs = say, model_name(job.model, job.seed), {}
        if tracking is None:
            return
        tags = {"kdbench.role": runner.role_of(job.model), "kdbench.job": job.hash}
        params = params_of(runner.described(job))
        for b in tracking.backends if backends is None else backends:
            try:
                self.logs[b] = backend(b).ModelLog(tracking, self.name, params, tags)
            except Exception as exc:  # noqa: BLE001 - a tracker never stops the run
                say(f"tracking {b}: {self.name} not logged: {exc}")

    def epoch(self, row: dict) -> None:
        self._each("log", *epoch_values(row))

    def final(self, step: int, values: dict[str, float]) -> None:
        self._each("final", step, values)

    def close(self, ok: bool = True) -> None:
        self._each("close", ok)

    def _each(self, method: str, *args) -> None:
        for b, log in list(self.logs.items()):
            try:
                getattr(log, method)(*args)
            except Exception as exc:  # noqa: BLE001
                self.say(f"tracking {b}: {self.name}: {method} failed, no more records from it: {exc}")
                del self.logs[b]


def suite_params(suite) -> dict[str, str]:
    return params_of({"suite": suite.model_dump(mode="json")})


def start(tracking: Tracking, suite, say: Callable[[str], None]) -> Tracking:
    """The run-level records; returns the tracking of the backends that started, with the ids their
    models' records hang under (a backend whose start failed says so and is dropped for the run)."""
    params, started, parents = suite_params(suite), [], {}
    for b in tracking.backends:
        try:
            parent = backend(b).start(tracking, params)
        except Exception as exc:  # noqa: BLE001
            say(f"tracking {b}: the run's record could not be started, nothing is logged there: {exc}")
            continue
        started.append(b)
        if parent is not None:
            parents[b] = parent
    return dataclasses.replace(tracking, backends=tuple(started), parents=parents)


def abort(tracking: Tracking, say: Callable[[str], None]) -> None:
    """A run that stopped (an error, Ctrl-C): its run-level records say so."""
    for b in tracking.backends:
        try:
            backend(b).abort(tracking)
        except Exception as exc:  # noqa: BLE001
            say(f"tracking {b}: could not mark the run as stopped: {exc}")


def finish(tracking: Tracking, plan, store, records, run_dir: Path, runner, say: Callable[[str], None]) -> None:
    """Every model's final metrics (and the curves of those trained before this run, from their
    history.json), then the report and the verdicts at the run level."""
    from kdbench.reports.html import render_html
    from kdbench.reports.tables import build
    from kdbench.reports.verdicts import pair_verdicts
    from kdbench.results.checks import load_run

    run = load_run(run_dir)
    trained_now = {r.hash for r in records if not r.cached}
    finals = {}
    for (name, seed), evaluation in plan.eval_jobs.items():
        job = evaluation.deps[0]  # the job that made or loaded the model
        fresh = job.hash in trained_now  # its curves were logged as it trained
        backends = [b for b in tracking.backends if not fresh or backend(b).REOPENS]
        logs = ModelLogs(tracking, job, runner, say, backends)
        history = store.path(job) / "history.json"
        rows = json.loads(history.read_text()) if history.is_file() else []
        if not fresh:
            for row in rows:
                logs.epoch(row)
        finals[logs.name] = final_values(run, name, seed)
        logs.final(len(rows), finals[logs.name])
        logs.close()
    data = build(run)  # the report's tables, once: the page and the verdicts
    verdicts = "\n".join(v.sentence() for v in pair_verdicts(data))
    tags = {"kdbench.run_dir": str(Path(run_dir).resolve()), "kdbench.run_id": run.manifest["run_id"]}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        report.write_text(render_html(data), encoding="utf-8")
        for b in tracking.backends:
            try:
                backend(b).finish(tracking, report, verdicts, tags, finals, suite_params(plan.suite))
            except Exception as exc:  # noqa: BLE001
                say(f"tracking {b}: the report and verdicts not logged: {exc}")
