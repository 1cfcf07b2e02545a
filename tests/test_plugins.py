"""Plugins: a user's network and method from files outside the package (and from an installed
package's entry point), run end to end, hashed by their source, and refused clearly when broken."""

import re
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


def test_editing_a_loss_leaves_the_network_beside_it_and_the_baseline_twin_cached(tmp_path):
    # the docs' own example: a network and a loss in one file
    shutil.copy(HERE.parent / "examples" / "my-method" / "my_plugin.py", tmp_path / "mine.py")
    suite = write_suite(tmp_path, "mine.py", arch="refnet", method="{name: kd_topk, k: 2}")
    before = _hashes(suite)
    source = (tmp_path / "mine.py").read_text()
    (tmp_path / "mine.py").write_text(source.replace('"kd_topk": t * t * soft', '"kd_topk": 0.5 * t * t * soft'))
    after = _hashes(suite)
    assert {j for j in before if before[j] != after[j]} == {"student:mine:seed0", "evaluate:mine:seed0"}
    # a change to the network reruns every job of that network, and not the teacher
    (tmp_path / "mine.py").write_text(
        source.replace("nn.Linear(128, num_classes)", "nn.Linear(128, num_classes, bias=False)")
    )
    net = _hashes(suite)
    assert {j for j in before if before[j] != net[j]} == {j for j in before if "teacher" not in j}
    # a module-level statement (an import, a constant) may change anything the file defines
    (tmp_path / "mine.py").write_text("SCALE = 2\n" + source)
    top = _hashes(suite)
    assert {j for j in before if before[j] != top[j]} == {j for j in before if "teacher" not in j}


def test_a_plugin_imports_a_helper_beside_it_and_editing_the_helper_reruns_its_jobs(tmp_path):
    (tmp_path / "weights.py").write_text("def scale():\n    return 1.0\n")
    source = (HERE / "plugins" / "loss_only.py").read_text()
    helped = source.replace('"top1": F.cross_entropy', '"top1": weights.scale() * F.cross_entropy')
    (tmp_path / "helped.py").write_text("import weights\n" + helped)
    suite = write_suite(tmp_path, "helped.py")
    before = _hashes(suite)
    (tmp_path / "weights.py").write_text("def scale():\n    return 0.5\n")
    after = _hashes(suite)
    assert {j for j in before if before[j] != after[j]} == {"student:mine:seed0", "evaluate:mine:seed0"}
    import weights  # the edited helper is the one loaded

    assert weights.scale() == 0.5
    assert str(tmp_path) not in sys.path  # importable while the plugin loads, not after


def test_a_plugin_with_a_bom_and_crlf_loads_as_python_loads_it(tmp_path):
    source = (HERE / "plugins" / "loss_only.py").read_text()
    (tmp_path / "loss.py").write_bytes(b"\xef\xbb\xbf" + source.replace("\n", "\r\n").encode())
    assert load_suite(write_suite(tmp_path, "loss.py")).students["mine"].method.name == "kd_top1"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import sys\nsys.exit(0)\n", r"bad.py raised SystemExit while being imported"),
        ("raise KeyboardInterrupt\n", r"bad.py raised KeyboardInterrupt while being imported"),
        (
            "import kdbench\nfrom typing import Literal\n\n\nclass P(kdbench.MethodParams):\n    other: int = 1\n\n\n"
            "@kdbench.register_method('nolit')\nclass M(kdbench.Method):\n    Params = P\n",
            r"method 'nolit' \(M\): its parameters model P needs the field `name: Literal\[\"nolit\"\] = \"nolit\"`",
        ),
        (
            "import kdbench\nfrom typing import Literal\n\n\nclass P(kdbench.MethodParams):\n"
            "    name: Literal['other'] = 'other'\n\n\n@kdbench.register_method('mine2')\nclass M(kdbench.Method):\n"
            "    Params = P\n",
            r"model P says name is Literal\['other'\] \(default 'other'\), but the decorator registers 'mine2'",
        ),
    ],
)
def test_a_plugin_that_exits_or_misnames_its_parameters_is_refused(tmp_path, capsys, source, expected):
    shutil.copy(HERE / "plugins" / "loss_only.py", tmp_path / "loss.py")
    (tmp_path / "bad.py").write_text(source)
    suite = write_suite(tmp_path, "loss.py, bad.py")
    with pytest.raises(SuiteError, match=expected):
        load_suite(suite)
    assert main(["validate", str(suite)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_run_says_which_plugin_file_changed(tmp_path):
    from kdbench.executors.store import Store

    store = Store(tmp_path / "store")
    assert store.plugin_files_changed({"/a/loss.py": "1", "/a/net.py": "2"}) == []
    assert store.plugin_files_changed({"/a/loss.py": "1", "/a/net.py": "3"}) == ["/a/net.py"]
    assert store.plugin_files_changed({"/a/loss.py": "1"}) == []  # a file a run does not load is kept
    assert store.plugin_files_changed({"/a/net.py": "3"}) == []


BROKEN_AT_RUN_TIME = {
    "float_loss": (
        "from typing import Literal\nimport kdbench\n\n\nclass P(kdbench.MethodParams):\n"
        "    name: Literal['floaty'] = 'floaty'\n\n\n@kdbench.register_method('floaty')\n"
        "class Floaty(kdbench.TeacherMethod):\n    Params = P\n\n    def losses(self, z_s, z_t, labels, progress):\n"
        "        return {'ce': 1.0}\n",
        {"method": "floaty"},
        r"student:mine:seed0: method 'floaty', forward_train \(.*broken.py, line 9\): loss 'ce' is a float, "
        r"expected a 0-dim tensor",
    ),
    "seven_classes": (
        "import kdbench\nfrom torch import nn\n\n\n@kdbench.register_model('seven')\ndef seven(num_classes=10):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 7))\n",
        {"arch": "seven", "method": "kd"},
        r"student:base:seed0: architecture 'seven' \(.*broken.py, line 5\) returned logits of shape \(2, 7\) "
        r"for 2 images, expected \(2, 10\)",
    ),
    "out_of_range": (
        "import kdbench\n\n\n@kdbench.register_condition('brighten')\nclass Brighten(kdbench.Condition):\n"
        "    group = 'noise'\n\n    def perturb(self, x, y, indices, level):\n        return x + 0.5\n",
        {"method": "kd", "evaluate": "brighten: {}"},
        r"evaluate:\w+:seed\d: condition 'brighten' \(.*broken.py, line 4\) returned images in \[0\.5, 1\.5\], "
        r"expected \[0, 1\]",
    ),
    "raises": (
        "from typing import Literal\nimport kdbench\n\n\nclass P(kdbench.MethodParams):\n"
        "    name: Literal['oops'] = 'oops'\n\n\n@kdbench.register_method('oops')\n"
        "class Oops(kdbench.TeacherMethod):\n    Params = P\n\n    def losses(self, z_s, z_t, labels, progress):\n"
        "        return {'ce': z_s[:, 99].mean()}\n",
        {"method": "oops"},
        r"student:mine:seed0: plugin code raised IndexError: index 99 is out of bounds.*\n"
        r'  File ".*broken.py", line 14, in losses\n    return',
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_AT_RUN_TIME))
def test_plugin_code_that_breaks_its_contract_at_run_time_stops_its_job_with_a_sentence(tmp_path, capsys, case):
    source, where, expected = BROKEN_AT_RUN_TIME[case]
    (tmp_path / "broken.py").write_text(source)
    text = SUITE.format(plugins="broken.py", arch=where.get("arch", "cnn_tiny"), method=where["method"])
    if "evaluate" in where:
        text = text.replace("fgsm: {eps: [8/255]}", where["evaluate"])
    (tmp_path / "suite.yaml").write_text(text)
    torch.set_num_threads(1)
    code = main(["run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert re.search(expected, err), err
    # nothing half-written: the failed job left no folder
    jobs = tmp_path / "out" / "_cache" / "jobs"
    assert all((d / "job.json").is_file() for d in jobs.iterdir()) if jobs.is_dir() else True


def test_the_docs_feature_method_plugin_runs_and_equals_the_built_in_pkt(tmp_path, capsys):
    shutil.copy(HERE.parent / "examples" / "feature-method" / "my_pkt.py", tmp_path / "my_pkt.py")
    suite = write_suite(tmp_path, "my_pkt.py", method="my_pkt")
    torch.set_num_threads(1)
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert "mine vs base (cnn_tiny, 1 seed)" in capsys.readouterr().err
    # its loss is the built-in pkt's, on the same embeddings
    from kdbench.training.methods.pkt import pkt_loss

    module = sys.modules[METHODS.module("my_pkt")]
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 16, generator=g), torch.randn(8, 32, generator=g)
    p, q = module.conditional(s), module.conditional(t)
    assert torch.allclose((q * torch.log((q + 1e-7) / (p + 1e-7))).mean(), pkt_loss(s, t), atol=1e-7)
