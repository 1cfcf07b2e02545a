"""What a run's tracking is: the backends, the folder they write under and the session that names
this run in every backend; a small frozen value that travels to the worker processes and Ray tasks
that train models, so each logs its own epochs as they happen."""

from __future__ import annotations

import importlib.util
import os
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.util.errors import UserError

# backend -> (the module it imports, the kdbench extra that installs it)
BACKENDS = {
    "mlflow": ("mlflow", "mlflow"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
}


class TrackingError(UserError):
    """A backend that is not installed (exit 2, naming the extra)."""


def check_installed(backends) -> None:
    for name in backends:
        module, extra = BACKENDS[name]
        if importlib.util.find_spec(module) is None:
            raise TrackingError(
                f"--track {name}: the {module} package is not installed; install it with "
                f"pip install 'kdbench[{extra}]' (or pip install -e '.[{extra}]' in a checkout)"
            )
        if name == "mlflow":
            _check_mlflow_uri(os.environ.get("MLFLOW_TRACKING_URI"))


def _check_mlflow_uri(uri: str | None) -> None:
    """A tracker the user asked for that cannot work is refused before any work (exit 2), never
    dropped mid-run: MLFLOW_TRACKING_URI naming a local path that is a file, not a store folder."""
    if not uri:
        return
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("", "file") or (parsed.scheme == "" and uri.startswith(("sqlite", "http"))):
        return  # a server or a database: only it can say whether it works
    path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser()
    if path.exists() and not path.is_dir():
        raise TrackingError(
            f"--track mlflow: MLFLOW_TRACKING_URI={uri} names a file, not an MLflow store folder; "
            "unset it (the store is then OUT/mlruns) or name a folder, a database or a server"
        )


@dataclass(frozen=True)
class Tracking:
    backends: tuple[str, ...]
    root: str  # the run's --out, absolute: mlruns/, tensorboard/ and wandb/ go under it
    experiment: str  # the suite's name: an MLflow experiment, a W&B project, a TensorBoard folder
    session: str  # this `kdbench run`: its start time and a random suffix
    # backend -> the id of the run-level record the per-model ones hang under (MLflow's parent run),
    # set by logs.start
    parents: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def start(cls, backends, root, experiment: str, started: str) -> "Tracking":
        return cls(tuple(dict.fromkeys(backends)), str(root), experiment, f"{started}-{uuid.uuid4().hex[:6]}")
