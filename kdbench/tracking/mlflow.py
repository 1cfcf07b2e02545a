"""MLflow, through its client: one run per `kdbench run` (tagged with the run directory, holding
the report and the verdicts) and under it, as nested runs, one per model and seed (its job's
parameters, per-epoch metrics and final metrics). A local file store, OUT/mlruns, unless
MLFLOW_TRACKING_URI names another; `mlflow ui --backend-store-uri OUT/mlruns` shows it."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

PARENT = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a run under its parent by it
MODEL_TAG = "kdbench.model"  # model:seedK, how the run's end finds a model's run again
SESSION_TAG = "kdbench.session"
REOPENS = True  # the run's end adds final metrics to the record a model's training made


def tracking_uri(tracking) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (Path(tracking.root) / "mlruns").resolve().as_uri()


def _client(tracking):
    with warnings.catch_warnings():  # MLflow 2.14 imports pkg_resources, which warns on every import
        warnings.simplefilter("ignore", UserWarning)
        from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(tracking))


def start(tracking, params: dict[str, str]) -> str:
    """The run-level MLflow run; its id is what every model's run hangs under."""
    client = _client(tracking)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(tracking.experiment)
        except Exception:  # noqa: BLE001 - another run into the same store created it just now
            experiment_id = client.get_experiment_by_name(tracking.experiment).experiment_id
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=tracking.session, tags={SESSION_TAG: tracking.session})
    _log(client, run.info.run_id, params=params)
    return run.info.run_id


class ModelLog:
    def __init__(self, tracking, name: str, params: dict[str, str], tags: dict[str, str]):
        self.client = _client(tracking)
        parent = tracking.parents["mlflow"]
        experiment_id = self.client.get_run(parent).info.experiment_id
        found = self.client.search_runs(
            [experiment_id], f"tags.`{MODEL_TAG}` = '{name}' and tags.`{PARENT}` = '{parent}'", max_results=1
        )
        if found:  # trained in this run: its end adds the final metrics to the same run
            self.run_id = found[0].info.run_id
        else:
            run = self.client.create_run(
                experiment_id,
                run_name=name,
                tags={PARENT: parent, MODEL_TAG: name, SESSION_TAG: tracking.session, **tags},
            )
            self.run_id = run.info.run_id
            _log(self.client, self.run_id, params=params)

    def log(self, step: int, values: dict[str, float]) -> None:
        _log(self.client, self.run_id, metrics=values, step=step)

    def final(self, step: int, values: dict[str, float]) -> None:
        self.log(step, values)

    def close(self, ok: bool = True) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


def abort(tracking) -> None:
    _client(tracking).set_terminated(tracking.parents["mlflow"], "FAILED")


def finish(tracking, report: Path, verdicts: str, tags: dict[str, str], finals: dict[str, dict], params) -> None:
    client, run_id = _client(tracking), tracking.parents["mlflow"]
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    client.log_artifact(run_id, str(report))
    client.log_text(run_id, verdicts, "verdicts.txt")
    client.set_terminated(run_id, "FINISHED")


def _log(client, run_id: str, params=None, metrics=None, step: int = 0) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    ps = [Param(k, v) for k, v in (params or {}).items()]
    ms = [Metric(k, v, now, step) for k, v in (metrics or {}).items()]
    for i in range(0, max(len(ps), len(ms)), 100):  # MLflow takes at most 100 parameters per call
        client.log_batch(run_id, metrics=ms[i : i + 100], params=ps[i : i + 100])
