"""Plugins: a user's network and method from files outside the package (and from an installed
package's entry point), run end to end, hashed by their source, and refused clearly when broken."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kdbench.cli import main
from kdbench.config import SuiteError, load_suite
from kdbench.config import plugins as plugin_loader
from kdbench.models import MODELS
from kdbench.training.methods import METHODS

HERE = Path(__file__).parent


pytestmark = pytest.mark.usefixtures("fresh_plugins")


SUITE = """
name: plug
plugins: [{plugins}]
dataset: {{name: synthetic, params: {{n_train: 200, n_test: 100, seed: 0}}}}
train: {{epochs: 1, batch_size: 50, lr: 0.05, augment: false}}
teachers:
  teacher: {{arch: cnn_tiny, seed: 7}}
students:
  base: {{arch: {arch}, method: baseline}}
  kd: {{arch: {arch}, method: kd, teachers: [teacher]}}
  mine: {{arch: {arch}, method: {method}, teachers: [teacher]}}
evaluate: {{n: 60, batch_size: 60, fgsm: {{eps: [8/255]}}}}
"""


def write_suite(folder: Path, plugins: str, arch: str = "cnn_tiny", method: str = "kd_top1") -> Path:
    path = folder / "suite.yaml"
    path.write_text(SUITE.format(plugins=plugins, arch=arch, method=method))
    return path


def test_a_plugin_network_and_method_run_end_to_end_and_are_listed(tmp_path, capsys):
    shutil.copy(HERE.parent / "examples" / "my-method" / "my_plugin.py", tmp_path / "mine.py")
    suite = write_suite(tmp_path, "mine.py", arch="refnet", method="{name: kd_topk, k: 2}")
    torch.set_num_threads(1)
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "mine vs base (refnet, 1 seed)" in err and "kd vs base (refnet, 1 seed)" in err
    assert main(["report", str(tmp_path / "out" / "plug" / "latest"), "-o", str(tmp_path / "r.html")]) == 0
    assert METHODS.origin("kd_topk") == f"plugin file {tmp_path / 'mine.py'}"
    assert main(["list", str(suite)]) == 0
    listed = capsys.readouterr().out
    assert "refnet" in listed and f"[from plugin file {tmp_path / 'mine.py'}]" in listed


def _hashes(suite_path: Path) -> dict[str, str]:
    from kdbench.pipeline.prepare import prepare

    return {j.id: j.hash for j in prepare(load_suite(suite_path), None, None, fetch=False)[2].jobs}


def test_editing_a_plugin_reruns_exactly_the_jobs_that_use_it(tmp_path):
    shutil.copy(HERE / "plugins" / "loss_only.py", tmp_path / "loss.py")
    suite = write_suite(tmp_path, "loss.py")
    before = _hashes(suite)
    # built-in jobs keep the hashes they have without any plugin
    (tmp_path / "plain").mkdir()
    plain = write_suite(tmp_path / "plain", "", method="kd")
    plain_hashes = _hashes(plain)
    for job in ("teacher:teacher:seed7", "student:base:seed0", "student:kd:seed0", "evaluate:kd:seed0"):
        assert before[job] == plain_hashes[job], job
    # the loss changes: its student and that student's evaluation rerun, nothing else
    source = (tmp_path / "loss.py").read_text()
    (tmp_path / "loss.py").write_text(source.replace('"top1": F.cross_entropy', '"top1": 0.5 * F.cross_entropy'))
    after = _hashes(suite)
    changed = {j for j in before if before[j] != after[j]}
    assert changed == {"student:mine:seed0", "evaluate:mine:seed0"}
    # and the edited loss is the one that runs
    assert "0.5 *" in __import__("inspect").getsource(METHODS.get("kd_top1").losses)


def test_an_entry_point_plugin_is_loaded_for_every_command(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "teamnets"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent('''
        import kdbench
        from torch import nn

        @kdbench.register_model("teamnet")
        def teamnet(num_classes=10):
            """The team's own network."""
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))
    ''')
    )
    info = tmp_path / "site" / "teamnets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: teamnets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[kdbench.plugins]\nteam = teamnets\n")
    env_path = str(tmp_path / "site")
    done = subprocess.run(
        [sys.executable, "-m", "kdbench", "list"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": env_path + ":" + ":".join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert "teamnet" in done.stdout and "[from package teamnets (entry point team)]" in done.stdout
    # in this process too, once the entry points are read again
    monkeypatch.syspath_prepend(env_path)
    monkeypatch.setattr(plugin_loader, "_ENTRY_POINTS_LOADED", False)
    loaded = plugin_loader.load_entry_points()
    assert [p.origin for p in loaded] == ["package teamnets (entry point team)"]
    assert MODELS.origin("teamnet") == "package teamnets (entry point team)"


def test_no_plugin_runs_unless_named(tmp_path):
    (tmp_path / "stray.py").write_text("raise SystemExit('a stray file was imported')\n")
    shutil.copy(HERE / "plugins" / "loss_only.py", tmp_path / "loss.py")
    assert load_suite(write_suite(tmp_path, "loss.py")).plugins == [str(tmp_path / "loss.py")]


@pytest.mark.parametrize(
    "source, expected",
    [
        (None, r"plugins.1: plugin file 'missing.py' not found"),
        ("def broken(:\n    pass\n", r"bad.py, line 1: SyntaxError: .*\n    def broken\(:"),
        (
            "import kdbench\n\n\ndef helper():\n    return 1 / 0\n\n\nhelper()\n",
            r"bad.py raised ZeroDivisionError while being imported: division by zero\n"
            r'  File ".*bad.py", line 8, in <module>\n    helper\(\)\n  File ".*bad.py", line 5, in helper',
        ),
        (
            "import kdbench\nfrom torch import nn\n\n\n@kdbench.register_model('resnet20')\ndef mine(num_classes=10):\n"
            "    return nn.Identity()\n",
            r"architecture 'resnet20' registered twice: by kdbench \(kdbench.models.resnet_cifar\) and by plugin file "
            r".*bad.py \(kdbench_plugins.bad_\w+\)",
        ),
        (
            "import kdbench\nfrom kdbench.training.methods.kd import KD\n\nkdbench.register_method('kd_top1')(KD)\n",
            r"method 'kd_top1' registered twice: by plugin file .*loss.py \(kdbench_plugins.loss_\w+\) and by plugin "
            r"file "
            r".*bad.py",
        ),
    ],
)
def test_a_broken_plugin_is_refused_with_its_file_and_line(tmp_path, capsys, source, expected):
    shutil.copy(HERE / "plugins" / "loss_only.py", tmp_path / "loss.py")
    name = "missing.py" if source is None else "bad.py"
    if source is not None:
        (tmp_path / name).write_text(source)
    suite = write_suite(tmp_path, f"loss.py, {name}")
    with pytest.raises(SuiteError, match=expected):
        load_suite(suite)
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "kdbench/config" not in err


def test_a_module_plugin_that_is_not_installed(tmp_path):
    with pytest.raises(SuiteError, match="plugin module 'no_such_kdbench_plugin' is not importable"):
        load_suite(write_suite(tmp_path, "no_such_kdbench_plugin"))
