"""Experiment tracking (`kdbench run --track mlflow|tensorboard|wandb`): each trained model's
parameters and per-epoch metrics as they happen, every model's final metrics, and the HTML report,
written offline by default. Tracking reads what the run makes and never feeds back: no job's hash
or number depends on it.

    session.py      what a run's tracking is (backends, where, the session) and the backends' checks
    values.py       the names and values logged: parameters, epoch rows, final metrics
    logs.py         the per-model logs opened where a model trains, and the run's end
    mlflow.py       MLflow through its client (a local file store unless MLFLOW_TRACKING_URI says)
    tensorboard.py  TensorBoard event files
    wandb.py        Weights & Biases, offline unless WANDB_MODE says
"""

from kdbench.tracking.session import BACKENDS, Tracking, TrackingError, check_installed

__all__ = ["BACKENDS", "Tracking", "TrackingError", "check_installed"]
