"""A fuzz of the surfaces users bring their own things through, as test_schema_fuzz does for the
schema: plugin shapes, checkpoint files, hostile names and image-folder oddities. Every case must
end with exit 0, 1 or 2, no traceback and no hang (a deadline interrupts a command that waits, so
a hang fails its test instead of stalling the suite). Each family has a case that must succeed, so
that every refusal is the oddity's."""

import contextlib
import os
import signal
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from kdbench.cli import main

DEADLINE_S = 60

pytestmark = pytest.mark.usefixtures("fresh_plugins")


@dataclass
class Done:
    returncode: int
    stderr: str


@contextlib.contextmanager
def deadline(seconds: int, what: str):
    def expired(signum, frame):
        raise TimeoutError(f"{what} hung (more than {seconds} s)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def kdbench(capsys, *argv, cwd: Path) -> Done:
    torch.set_num_threads(1)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with deadline(DEADLINE_S, f"kdbench {' '.join(map(str, argv))}"):
            code = main([str(a) for a in argv])
    except SystemExit as exc:  # what main lets through is itself a failure here
        code = f"SystemExit({exc.code})"
    finally:
        os.chdir(here)
    return Done(code, capsys.readouterr().err)


def assert_clean_exit(done: Done, allowed=(0, 1, 2)) -> None:
    assert done.returncode in allowed, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


# ------------------------------------------------------------------------ plugin shapes
PLUGIN_HEAD = "from typing import Literal\nimport torch\nfrom torch import nn\nimport kdbench\n\n\n"
METHOD = (
    "class P(kdbench.MethodParams):\n    name: Literal['odd'] = 'odd'\n\n\n"
    "@kdbench.register_method('odd')\nclass Odd(kdbench.TeacherMethod):\n    Params = P\n\n"
    "    def losses(self, z_s, z_t, labels, progress):\n        return {body}\n"
)
MODEL = "@kdbench.register_model('oddnet')\ndef oddnet(num_classes=10):\n    {body}\n"
CONDITION = (
    "@kdbench.register_condition('oddcond')\nclass OddCond(kdbench.Condition):\n    group = 'noise'\n\n"
    "    def perturb(self, x, y, indices, level):\n        return {body}\n"
)

LOSSES = {  # what a method's losses returns
    "loss_none": "None",
    "loss_list": "[torch.nn.functional.cross_entropy(z_s, labels)]",
    "loss_per_example": "{'ce': torch.nn.functional.cross_entropy(z_s, labels, reduction='none')}",
    "loss_int_tensor": "{'ce': labels.sum()}",
    "loss_nan": "{'ce': z_s.sum() * float('nan')}",
    "loss_empty": "{}",
    "fine": "{'ce': torch.nn.functional.cross_entropy(z_s, labels)}",
}
FACTORIES = {  # what a network factory does
    "model_tuple": "return nn.Sequential(nn.Flatten(), nn.Linear(3072, num_classes), nn.Unflatten(1, (1, -1)))",
    "model_none": "return None",
    "model_raises": "raise RuntimeError('no network today')",
    "model_ignores_classes": "return nn.Sequential(nn.Flatten(), nn.Linear(3072, 7))",
}
IMAGES = {  # what a condition's perturb returns
    "condition_uint8": "(x * 255).to(torch.uint8)",
    "condition_shape": "x[:, :1]",
    "condition_nan": "x * float('nan')",
    "condition_tuple": "(x, y)",
}
METRIC = (
    "@kdbench.register_metric('oddmetric', 'calibration', True, per_example={per})\ndef oddmetric(z, y):\n    {body}\n"
)
METRICS = {  # what a model metric returns
    "metric_string": METRIC.format(per=False, body="return 'high'"),
    "metric_shape": METRIC.format(per=True, body="return z"),
    "metric_raises": METRIC.format(per=False, body="raise ValueError('no metric today')"),
}
REGISTRATIONS = {  # what a plugin registers
    "not_a_method": "kdbench.register_method('odd')(lambda: None)\n",
    "register_number": "kdbench.register_model(7)(lambda num_classes=10: None)\n",
    "register_markup": "kdbench.register_model('<b>x</b>')(lambda num_classes=10: None)\n",
}
# case -> (plugin source, the student's method, its architecture)
PLUGINS = {
    **{k: (METHOD.format(body=b), "odd", "cnn_tiny") for k, b in LOSSES.items()},
    **{k: (MODEL.format(body=b), "kd", "oddnet") for k, b in FACTORIES.items()},
    **{k: (CONDITION.format(body=b), "kd", "cnn_tiny") for k, b in IMAGES.items()},
    **{k: (source, "kd", "cnn_tiny") for k, source in {**METRICS, **REGISTRATIONS}.items()},
}

PLUGIN_SUITE = """
name: fuzz
plugins: [plugin.py]
dataset: {{name: synthetic, params: {{n_train: 64, n_test: 32, seed: 0}}}}
train: {{epochs: 1, batch_size: 32, lr: 0.05, augment: false}}
teachers:
  t: {{arch: cnn_tiny, evaluate: clean}}
students:
  base: {{arch: {arch}, method: baseline}}
  s: {{arch: {arch}, method: {method}, teachers: [t]}}
evaluate: {{batch_size: 32, saliency: 0{extra}}}
"""


@pytest.mark.parametrize("case", sorted(PLUGINS))
def test_plugin_shapes(tmp_path, capsys, case):
    body, method, arch = PLUGINS[case]
    (tmp_path / "plugin.py").write_text(PLUGIN_HEAD + body)
    extra = ", oddcond: {}" if case.startswith("condition") else ""
    (tmp_path / "suite.yaml").write_text(PLUGIN_SUITE.format(arch=arch, method=method, extra=extra))
    done = kdbench(capsys, "run", "suite.yaml", "--out", "out", "--device", "cpu", cwd=tmp_path)
    assert_clean_exit(done)
    assert (done.returncode == 0) == (case == "fine"), f"{case}: exit {done.returncode}\n{done.stderr[-2000:]}"
    # nothing half-written
    jobs = tmp_path / "out" / "_cache" / "jobs"
    if jobs.is_dir():
        assert all((d / "job.json").is_file() for d in jobs.iterdir())


# ------------------------------------------------------------------------ checkpoint files
def _checkpoints(folder: Path) -> dict[str, callable]:
    torch.manual_seed(0)
    from kdbench.models import create_model

    good = create_model("cnn_tiny", 10).state_dict()
    torch.save(good, folder / "good.pt")
    raw = (folder / "good.pt").read_bytes()

    def nan():
        torch.save(
            {k: v.float() * float("nan") if v.is_floating_point() else v for k, v in good.items()}, folder / "x.pt"
        )

    def zip_of_text():
        with zipfile.ZipFile(folder / "x.pt", "w") as z:
            z.writestr("archive/data.pkl", "not a pickle at all")

    return {
        "truncated": lambda: (folder / "x.pt").write_bytes(raw[: len(raw) // 2]),
        "empty": lambda: (folder / "x.pt").write_bytes(b""),
        "random_bytes": lambda: (folder / "x.pt").write_bytes(np.random.default_rng(0).bytes(4096)),
        "wrong_keys": lambda: torch.save({"other." + k: v for k, v in good.items()}, folder / "x.pt"),
        "wrong_shapes": lambda: torch.save({k: v[:1] if v.dim() else v for k, v in good.items()}, folder / "x.pt"),
        "nan_weights": nan,
        "zip_of_text": zip_of_text,
        "a_tensor": lambda: torch.save(torch.zeros(3), folder / "x.pt"),
        "a_directory": lambda: (folder / "x.pt").mkdir(),
        "good": lambda: (folder / "x.pt").write_bytes(raw),
    }


CHECKPOINT_SUITE = """
name: ckpt
dataset: {name: synthetic, params: {n_train: 64, n_test: 32, seed: 0}}
students:
  base: {arch: cnn_tiny, method: baseline, checkpoints: {0: good.pt}}
  s: {arch: cnn_tiny, method: label_smoothing, checkpoints: {0: x.pt}}
evaluate: {batch_size: 32, saliency: 0, fgsm: {eps: [8/255]}}
"""


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "empty",
        "random_bytes",
        "wrong_keys",
        "wrong_shapes",
        "nan_weights",
        "zip_of_text",
        "a_tensor",
        "a_directory",
        "good",
    ],
)
def test_checkpoint_files(tmp_path, capsys, case):
    _checkpoints(tmp_path)[case]()
    (tmp_path / "suite.yaml").write_text(CHECKPOINT_SUITE)
    done = kdbench(capsys, "run", "suite.yaml", "--out", "out", "--device", "cpu", cwd=tmp_path)
    assert_clean_exit(done)
    # NaN weights load: a network that outputs NaN is scored as what it is (no class, 0 %)
    assert (done.returncode == 0) == (case in ("good", "nan_weights")), f"{case}: exit {done.returncode}"


# ------------------------------------------------------------------------ hostile names
NAMES = [
    "n" * 65,
    "runs.sqlite",
    "Tensorboard",
    "<script>alert(1)</script>",
    "a\x1b[31mred",
    "\u202eevil",
    "../../etc",
    ".hidden",
    "con",  # a Windows device name: a plain folder here
    "é",
    "a b",
    "",
    "fine-name_1.0",
]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_hostile_names(tmp_path, capsys, name):
    suite = {
        "name": name,
        "dataset": {"name": "synthetic", "params": {"n_train": 64, "n_test": 32}},
        "train": {"epochs": 1, "batch_size": 32},
        "students": {name or "x": {"arch": "cnn_tiny", "method": "baseline"}},
        "evaluate": {"batch_size": 32, "saliency": 0},
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True))
    done = kdbench(capsys, "validate", "suite.yaml", cwd=tmp_path)
    assert_clean_exit(done, allowed=(0, 2))
    assert not any(c in done.stderr for c in "\x1b\u202e")
    assert (done.returncode == 0) == (name in ("con", "fine-name_1.0")), done.stderr
    if done.returncode == 0:  # what validate accepts, run runs
        done = kdbench(capsys, "run", "suite.yaml", "--out", "out", "--device", "cpu", cwd=tmp_path)
        assert_clean_exit(done, allowed=(0,))


# ------------------------------------------------------------------------ image folders
def _image(path: Path, size=16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), 128, np.uint8)).save(path)


def _folder(root: Path) -> None:
    for split in ("train", "test"):
        for cls in ("a", "b"):
            for i in range(4):
                _image(root / split / cls / f"{i}.png")


ODDITIES = {
    "none": lambda r: None,
    "fifo": lambda r: os.mkfifo(r / "test" / "a" / "pipe.png"),
    "directory_named_png": lambda r: (r / "test" / "a" / "dir.png").mkdir(),
    "empty_png": lambda r: (r / "test" / "a" / "empty.png").write_bytes(b""),
    "text_named_png": lambda r: (r / "test" / "a" / "note.png").write_text("hello"),
    "dangling_link": lambda r: os.symlink(r / "nowhere.png", r / "test" / "a" / "gone.png"),
    "link_loop": lambda r: os.symlink(r / "test", r / "test" / "a" / "loop"),
    "empty_class": lambda r: (r / "test" / "c").mkdir(),
    "unreadable": lambda r: os.chmod(r / "test" / "a" / "0.png", 0),
    "truncated_png": lambda r: (r / "test" / "a" / "0.png").write_bytes((r / "test" / "a" / "1.png").read_bytes()[:40]),
}

FOLDER_SUITE = """
name: folder
dataset: {{name: imagefolder, root: {root}, params: {{image_size: 16}}}}
train: {{epochs: 1, batch_size: 8, augment: false}}
students:
  base: {{arch: cnn_tiny, method: baseline}}
evaluate: {{batch_size: 8, saliency: 0}}
"""


@pytest.mark.parametrize("case", sorted(ODDITIES))
def test_image_folder_oddities(tmp_path, capsys, case):
    root = tmp_path / "images"
    _folder(root)
    ODDITIES[case](root)
    (tmp_path / "suite.yaml").write_text(FOLDER_SUITE.format(root=root))
    done = kdbench(capsys, "run", "suite.yaml", "--out", "out", "--device", "cpu", cwd=tmp_path)
    assert_clean_exit(done)
    if case == "none":
        assert done.returncode == 0, done.stderr
