"""Weights & Biases, offline unless WANDB_MODE says otherwise (`wandb sync OUT/wandb/offline-run-*`
uploads later): one W&B run per model and seed, grouped by the session, its job's parameters as
the config and its per-epoch metrics as history; and a run for the session holding every model's
final metrics in its summary (`<model>:seed<K>/<name>`) and the report as an artefact. An offline
W&B run cannot be reopened, so the final metrics go to the session's run, written last."""

from __future__ import annotations

import os
from pathlib import Path

from kdbench.util.hashing import content_hash

REOPENS = False  # a model's run is written once: where it trains, or at the run's end if trained before


def _init(tracking, name: str, job_type: str, config: dict | None = None):
    import wandb

    return wandb.init(
        mode=os.environ.get("WANDB_MODE", "offline"),
        dir=tracking.root,
        project=tracking.experiment,
        group=tracking.session,
        name=name,
        id=content_hash([tracking.session, name])[:16],
        job_type=job_type,
        config=config,
        settings=wandb.Settings(console="off", silent=True),
    )


def start(tracking, params: dict[str, str]) -> None:
    return None  # the session's own run is written at its end, with the report and these parameters


class ModelLog:
    def __init__(self, tracking, name: str, params: dict[str, str], tags: dict[str, str]):
        self.run = _init(tracking, name, tags.get("kdbench.role", "model"), {**tags, **params})

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def final(self, step: int, values: dict[str, float]) -> None:
        return None  # in the session's run (finish)

    def close(self, ok: bool = True) -> None:
        self.run.finish(exit_code=0 if ok else 1)


def abort(tracking) -> None:
    return None  # each model's record was closed where it trained


def finish(tracking, report: Path, verdicts: str, tags: dict[str, str], finals: dict[str, dict], params) -> None:
    import wandb

    run = _init(tracking, tracking.session, "run", {**tags, **params})
    run.summary.update({f"{name}/{k}": v for name, values in finals.items() for k, v in values.items()})
    artifact = wandb.Artifact(f"report-{run.id}", type="report")
    artifact.add_file(str(report))
    run.log_artifact(artifact)
    run.summary["verdicts"] = verdicts
    run.finish()
