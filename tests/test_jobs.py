"""`kdbench run --jobs N`: several jobs at once in worker processes on this machine. The same
results as one at a time, byte for byte, at the same threads per job; Ctrl-C and kill -9 leave
nothing half-written and the run resumes; a job out of memory beside others, or whose worker the
system killed, waits and runs again alone; the store records the threads each job ran at and a
run that reuses jobs made at other thread counts says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tiny_suite import run, same_results, suite_text

from kdbench.cli import main

# a kd whose first call in the whole run, anywhere, reports a CUDA out-of-memory error (a flag file,
# deleted by the call that raises, makes it once); with ALWAYS it does so on every call
OOM_PLUGIN = """
import os
from typing import Literal

import torch

import kdbench
from kdbench.training.methods.kd import KD, KDParams


class KDOomParams(KDParams):
    name: Literal["kd_oom"] = "kd_oom"


@kdbench.register_method("kd_oom")
class KDOom(KD):
    Params = KDOomParams

    def forward_train(self, student, teachers, batch):
        flag = os.environ["KDBENCH_TEST_OOM_FLAG"]
        try:
            os.unlink(flag)
            hit = True
        except FileNotFoundError:
            hit = os.environ.get("KDBENCH_TEST_OOM_ALWAYS") == "1"
        if hit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (test)")
        return super().forward_train(student, teachers, batch)
"""


def suite_file(tmp_path: Path, epochs: int = 3, method: str = "kd", plugin: bool = False) -> Path:
    if plugin:
        (tmp_path / "oom_plugin.py").write_text(OOM_PLUGIN)
    path = tmp_path / "suite.yaml"
    path.write_text(suite_text("tiny_jobs", epochs, method, ("oom_plugin.py",) if plugin else ()))
    return path


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory):
    out = tmp_path_factory.mktemp("jobs1")
    assert run(suite_file(out), out) == 0
    return out / "tiny_jobs" / "latest"


def test_two_jobs_at_once_give_one_at_a_times_results_byte_for_byte(one_at_a_time, tmp_path, capsys):
    assert run(suite_file(tmp_path), tmp_path, "--jobs", 2, "--eval-group", 2) == 0
    err = capsys.readouterr().err
    assert "(2 at once" in err  # two students did train side by side
    got = tmp_path / "tiny_jobs" / "latest"
    same_results(one_at_a_time, got)
    m, base = manifest(got), manifest(one_at_a_time)
    assert m["executor"] == {"name": "local", "eval_group": 2, "jobs": 2}
    assert {j["hash"] for j in m["jobs"]} == {j["hash"] for j in base["jobs"]}  # --jobs is in no hash
    assert {(j["device"], j["threads"]) for j in m["jobs"]} == {("cpu", 1)}
    assert m["threads"] == 1
    # the teacher's outputs the kd students train on (no augmentation): made once, not by each student
    assert len(list((tmp_path / "_cache" / "teacher_logits").glob("*.pt"))) == 1
    assert not list((tmp_path / "_cache" / "jobs").glob(".*.part"))


def test_reusing_jobs_made_at_other_thread_counts_is_said(one_at_a_time, capsys):
    import torch

    out, threads = one_at_a_time.parent.parent, torch.get_num_threads()
    assert main(["run", str(out / "suite.yaml"), "--out", str(out), "--device", "cpu", "--threads", "3"]) == 0
    assert torch.get_num_threads() == threads  # a run in the caller's process leaves its torch as it was
    err = capsys.readouterr().err
    assert "10 of 10 jobs already done (cached); 0 to run" in err
    assert "10 cached CPU job(s) ran at 1 torch thread(s), this run at evaluate 3, student 3, teacher 3" in err
    assert "CPU results depend on the thread count" in err
    assert manifest(out / "tiny_jobs" / "latest")["threads"] == 1  # what the numbers were computed at


def test_the_gate_notes_a_run_whose_jobs_ran_at_several_thread_counts():
    from kdbench.analysis.gate import machine_notes

    (note,) = machine_notes({"threads": 1}, {"threads": [1, 2]})
    assert "torch threads 1 in the baseline, [1, 2] in the run" in note


def _driver(suite: Path, out: Path, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "kdbench", "run", str(suite), "--out", str(out), "--device", "cpu", "--threads", "1"]
    return subprocess.Popen(
        [*cmd, "--jobs", "2", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, KDBENCH_PROGRESS="0"),
        # Ctrl-C's default disposition, as a driver started from a terminal has
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _wait_for_a_finished_job_and_a_running_one(store: Path, driver: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None:
        done = [p for p in store.glob("*") if not p.name.startswith(".") and (p / "job.json").is_file()]
        if done and list(store.glob(".*.part")):
            return
        time.sleep(0.02)
    raise AssertionError(f"no job ran: {driver.communicate(timeout=60)[1][-3000:]}")


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_interrupted_with_jobs_at_once_leaves_nothing_half_written_and_resumes(one_at_a_time, tmp_path, how, capsys):
    out, suite = tmp_path / "out", suite_file(tmp_path)
    store = out / "_cache" / "jobs"
    driver = _driver(suite, out)
    _wait_for_a_finished_job_and_a_running_one(store, driver)
    workers = _children(driver.pid) - {driver.pid}
    driver.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
    _, err = driver.communicate(timeout=120)
    if how == "ctrl-c":
        assert driver.returncode == 130, err[-3000:]
        assert "Traceback" not in err
        assert not list(store.glob(".*.part"))  # the driver removed what its stopped workers had begun
    else:
        assert driver.returncode == -signal.SIGKILL
    deadline = time.time() + 30  # the workers die with their driver (PR_SET_PDEATHSIG)
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.1)
    assert workers and not any(Path(f"/proc/{p}").exists() for p in workers)
    done = sorted(p.name for p in store.iterdir() if (p / "job.json").is_file())
    assert 1 <= len(done) < 10
    capsys.readouterr()
    # resumed with jobs at once after Ctrl-C, one at a time after kill -9: either way the same bytes
    assert run(suite, out, "--jobs", 2 if how == "ctrl-c" else 1) == 0
    err = capsys.readouterr().err
    assert f"{len(done)} of 10 jobs already done (cached)" in err
    assert not list(store.glob(".*.part"))
    same_results(one_at_a_time, out / "tiny_jobs" / "latest")


def test_a_job_out_of_memory_beside_others_waits_and_runs_alone(
    one_at_a_time, tmp_path, monkeypatch, capsys, fresh_plugins
):
    flag = tmp_path / "oom-once"
    flag.write_text("")
    monkeypatch.setenv("KDBENCH_TEST_OOM_FLAG", str(flag))
    suite = suite_file(tmp_path, method="kd_oom", plugin=True)
    assert run(suite, tmp_path / "out", "--jobs", 2) == 0
    err = capsys.readouterr().err
    assert "ran out of memory beside other jobs; it waits and runs again alone" in err
    assert " (alone, " in err
    assert not flag.exists()
    # the numbers of a run in which nothing ran out of memory (kd_oom is kd; the method's name is in the tables)
    got = tmp_path / "out" / "tiny_jobs" / "latest"
    for name in ("per_example.npz", "agreement.csv"):
        assert (one_at_a_time / name).read_bytes() == (got / name).read_bytes(), name


def test_a_job_out_of_memory_alone_ends_the_run(tmp_path, monkeypatch, capsys, fresh_plugins):
    flag = tmp_path / "oom-once"
    monkeypatch.setenv("KDBENCH_TEST_OOM_FLAG", str(flag))
    monkeypatch.setenv("KDBENCH_TEST_OOM_ALWAYS", "1")
    assert run(suite_file(tmp_path, method="kd_oom", plugin=True), tmp_path / "out", "--jobs", 2) == 1
    err = capsys.readouterr().err
    assert "student:kd:seed0" in err and "out of memory (CUDA out of memory. Tried to allocate 2.00 GiB" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "out" / "_cache" / "jobs").glob(".*.part"))


def test_a_worker_killed_by_the_system_reruns_its_job_alone(one_at_a_time, tmp_path, capsys):
    out = tmp_path / "out"
    store = out / "_cache" / "jobs"
    students = {j["hash"] for j in manifest(one_at_a_time)["jobs"] if j["kind"] == "student" and "kd" in j["id"]}
    killed = []

    def kill_a_worker_in_training():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for part in store.glob(".*.part"):
                job_hash, pid = part.name.split(".")[1:3]
                if job_hash in students:
                    os.kill(int(pid), signal.SIGKILL)  # as the OOM killer would
                    killed.append(job_hash)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker_in_training)
    killer.start()
    code = run(suite_file(tmp_path), out, "--jobs", 2)
    killer.join()
    err = capsys.readouterr().err
    assert code == 0 and killed, err[-3000:]
    assert "lost its worker process beside other jobs; it waits and runs again alone" in err
    same_results(one_at_a_time, out / "tiny_jobs" / "latest")
    assert not list(store.glob(".*.part"))


def test_jobs_flag_is_checked(tmp_path, capsys):
    suite = suite_file(tmp_path)
    assert run(suite, tmp_path, "--jobs", 0) == 2
    assert "--jobs 0: expected a whole number of jobs, 1 or more" in capsys.readouterr().err
    assert run(suite, tmp_path, "--jobs", 2, "--executor", "ray") == 2
    assert "--jobs: only with --executor local" in capsys.readouterr().err
