"""TensorBoard event files: OUT/tensorboard/<suite>/<session>/<model>/seed<K>/ per model (its
parameters as a text table, per-epoch and final scalars) and the session's own folder (the run's
parameters and verdicts as text, report.html beside them); `tensorboard --logdir OUT/tensorboard`."""

from __future__ import annotations

import shutil
from pathlib import Path

REOPENS = True  # the run's end adds final scalars to the folder a model's training wrote


def session_dir(tracking) -> Path:
    return Path(tracking.root) / "tensorboard" / tracking.experiment / tracking.session


def _writer(path: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(path))


def _table(params: dict[str, str]) -> str:
    rows = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in params.items())
    return "| parameter | value |\n|---|---|\n" + rows


def start(tracking, params: dict[str, str]) -> None:
    with _writer(session_dir(tracking)) as w:
        w.add_text("parameters", _table(params))


class ModelLog:
    def __init__(self, tracking, name: str, params: dict[str, str], tags: dict[str, str]):
        model, seed = name.rsplit(":", 1)
        path = session_dir(tracking) / model / seed
        # a model trained in this run already has its parameters; the run's end only adds
        fresh = not path.is_dir()
        self.writer = _writer(path)
        if fresh:
            self.writer.add_text("parameters", _table({**tags, **params}))

    def log(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()  # as it happens: TensorBoard shows the epoch now, not at the job's end

    def final(self, step: int, values: dict[str, float]) -> None:
        self.log(step, values)

    def close(self, ok: bool = True) -> None:
        self.writer.close()


def abort(tracking) -> None:
    return None  # each model's record was closed where it trained


def finish(tracking, report: Path, verdicts: str, tags: dict[str, str], finals: dict[str, dict], params) -> None:
    path = session_dir(tracking)
    shutil.copyfile(report, path / "report.html")
    with _writer(path) as w:
        w.add_text("verdicts", verdicts.replace("\n", "  \n"))
        w.add_text("run", _table(tags))
