"""Portable mode: the same weights from any x86-64 CPU. Each "CPU" is simulated in a subprocess
by capping what torch's and NumPy's libraries may use (ATen's dispatch capability, oneDNN's, MKL's
and NumPy's instruction sets) at every level this machine has; a small network is trained for a
few steps through kdbench's own loop, and the 15 corruptions are generated on a few images. The
default mode must differ across them (or the test could not tell), and portable mode must not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdbench.util import portable

CHILD = r"""
import hashlib, sys
import torch
from kdbench.config import TrainRecipe
from kdbench.data.synthetic import make_synthetic
from kdbench.models import create_model
from kdbench.training.loop import train
from kdbench.training.methods import METHODS
from kdbench.util import portable

if sys.argv[1] == "portable":
    portable.apply()
else:
    torch.set_num_threads(int(sys.argv[2]))
train_split = make_synthetic(n_train=256, n_test=10, seed=0).train
torch.manual_seed(0)
net = create_model("cnn_small", 10)
recipe = TrainRecipe(epochs=1, batch_size=32, lr=0.05, augment=False, weight_decay=5e-4)
train(net, train_split.images, train_split.labels, recipe, METHODS.get("baseline")(METHODS.get("baseline").Params()), 0)
h = hashlib.sha256()
for k, v in net.state_dict().items():
    h.update(k.encode() + v.detach().contiguous().numpy().tobytes())
from kdbench.evaluation.conditions.corruptions import corrupt
from kdbench.util.names import BENCHMARK_CORRUPTIONS
import numpy as np
images, idx = train_split.images[:2], torch.arange(2)
c = hashlib.sha256()
for name in BENCHMARK_CORRUPTIONS:
    c.update(corrupt(name, images, idx, 3).numpy().tobytes())
x = np.linspace(-5, 5, 10001)
c.update(np.exp(x).tobytes() + np.sin(x.astype(np.float32)).tobytes())
print(torch.backends.cpu.get_cpu_capability(), h.hexdigest(), c.hexdigest())
"""


def _flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def simulated_cpus() -> list[dict]:
    """One environment per instruction-set level this CPU has: what the libraries would do on a
    CPU of that level (ATen's dispatch, oneDNN's, MKL's and NumPy's code paths capped alike)."""
    flags = _flags()
    dispatch = portable.environment()[portable.NUMPY_FEATURES].split()
    avx512 = [t for t in dispatch if "512" in t or t == "X86_V4"]
    levels = [
        {
            "ATEN_CPU_CAPABILITY": "default",
            "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
            portable.NUMPY_FEATURES: " ".join(dispatch),
        }
    ]
    if "avx2" in flags:
        levels.append(
            {
                "ATEN_CPU_CAPABILITY": "avx2",
                "ONEDNN_MAX_CPU_ISA": "AVX2",
                "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                portable.NUMPY_FEATURES: " ".join(avx512),
            }
        )
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        levels.append(
            {
                "ATEN_CPU_CAPABILITY": "avx512",
                "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
                "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                portable.NUMPY_FEATURES: "",
            }
        )
    return levels


def train_on(cpu: dict, mode: str, threads: int = 1) -> tuple[str, str]:
    """(weights hash, corruptions and NumPy math hash) on a simulated CPU."""
    pins = portable.environment()
    env = {k: v for k, v in os.environ.items() if k not in pins}
    env.update(cpu)
    if mode == "portable":
        env.update(pins)  # portable mode's own pins win over the simulated CPU's choice
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(threads)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tuple(done.stdout.split()[-2:])


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="x86-64 Linux only")
def test_portable_mode_gives_the_same_weights_on_every_instruction_set_level():
    cpus = simulated_cpus()
    if len(cpus) < 2:
        pytest.skip("this CPU has one instruction-set level: nothing to compare")
    # the test can tell: the default mode's weights, and its NumPy math, differ between the lowest
    # level and the highest
    default = [train_on(cpu, "default") for cpu in (cpus[0], cpus[-1])]
    assert len({w for w, _ in default}) > 1, "the default mode gave one weights hash: the levels do not differ here"
    assert len({c for _, c in default}) > 1, "the default mode gave one NumPy hash: the levels do not differ here"
    same = {train_on(cpu, "portable") for cpu in cpus}
    assert len(same) == 1, f"portable mode gave {len(same)} different results over {len(cpus)} levels: {same}"


def test_portable_mode_refuses_a_torch_imported_without_it(monkeypatch):
    import torch

    for key in portable.environment():
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(portable.PortableError, match="needs its settings before torch is imported"):
        portable.check_ready()
    # the settings in place, but torch already chose its kernels at import
    for key, value in portable.environment().items():
        monkeypatch.setenv(key, value)
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        with pytest.raises(portable.PortableError, match="torch was imported with CPU capability"):
            portable.check_ready()


def test_portable_mode_enters_the_hashes_of_the_jobs_that_compute(tmp_path):
    from kdbench.config import load_suite
    from kdbench.pipeline.prepare import prepare

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: p\ndataset: {name: synthetic, params: {n_train: 64, n_test: 32}}\ntrain: {epochs: 1, batch_size: 32}\n"
        "teachers:\n  t: {arch: cnn_tiny}\nstudents:\n  s: {arch: cnn_tiny, method: kd, teachers: [t]}\n"
    )
    machine = {j.id: j.hash for j in prepare(load_suite(suite), None, None, fetch=False)[2].jobs}
    text = suite.read_text() + "reproducible: portable\n"
    suite.write_text(text)
    portable_hashes = {j.id: j.hash for j in prepare(load_suite(suite), None, None, fetch=False)[2].jobs}
    assert machine.keys() == portable_hashes.keys()
    assert all(machine[j] != portable_hashes[j] for j in machine)


def test_the_gate_expecting_identical_networks_fails_naming_what_differs(tmp_path):
    import fakerun

    from kdbench.analysis.gate import gate_paths

    base = fakerun.fake_results(seeds=(0, 1))
    fakerun.write(tmp_path / "base", base)
    same = base.copy()
    fakerun.write(tmp_path / "same", same)
    result = gate_paths(tmp_path / "same", tmp_path / "base", identical=True)
    assert result.exit_code == 0 and result.not_identical == [] and "Identical: every network" in result.markdown
    # nothing can have fallen: no metric is left inconclusive, even a one-seed one
    assert set(result.table.loc[result.table["status"] == "both", "verdict"]) == {"identical"}
    # one network retrained, and one result flipped on a network that is the same
    other = base.copy()
    fakerun.retrain(other, models=["resnet20-kd"])
    row = int(
        next(
            i
            for i, (m, c) in enumerate(zip(other.metrics["model"], other.metrics["condition"]))
            if m == "resnet20-baseline" and c == "clean"
        )
    )
    other.correct[row, 0] = ~other.correct[row, 0]
    other.resync()
    fakerun.write(tmp_path / "other", other)
    result = gate_paths(tmp_path / "other", tmp_path / "base", identical=True)
    assert result.exit_code == 1
    differ = result.not_identical
    assert "resnet20-kd: weights hashes differ (the network was trained differently)" in differ
    assert "resnet20-baseline seed 0, clean: 1 per-example result(s) differ on the same network" in differ
    assert result.markdown.startswith("## kdbench gate: FAIL") and "networks not identical" in result.markdown
    assert "\n- resnet20-kd: weights hashes differ" in result.markdown
    # without the expectation the same runs pass on statistics alone
    assert gate_paths(tmp_path / "other", tmp_path / "base").exit_code == 0


def test_the_command_line_sets_the_environment_and_records_the_mode(tmp_path):
    import json

    (tmp_path / "suite.yaml").write_text(
        "name: p\ndataset: {name: synthetic, params: {n_train: 64, n_test: 32}}\n"
        "train: {epochs: 1, batch_size: 32, augment: false}\nstudents:\n  s: {arch: cnn_tiny, method: baseline}\n"
        "evaluate: {batch_size: 32, saliency: 0}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in portable.environment()}

    def kdbench_run(*flags):
        argv = [sys.executable, "-m", "kdbench", "run", "suite.yaml", "--out", "out", "--portable", *flags]
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    done = kdbench_run("--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads(next((tmp_path / "out" / "p").glob("2*/manifest.json")).read_text())
    mode = manifest["reproducible"]
    assert mode["mode"] == "portable" and mode["cpu_capability"] == "DEFAULT" and mode["mkldnn"] is False
    assert mode["threads"] == 1 and manifest["threads"] == 1
    # more threads than portable mode runs at is refused, not silently changed
    done = kdbench_run("--threads", "2")
    assert done.returncode == 2 and "portable mode runs every job at 1 thread" in done.stderr
