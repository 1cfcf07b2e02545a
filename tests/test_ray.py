"""The Ray executor on a real local Ray cluster (started once for this module): the same results as
the local executor, byte for byte; a worker killed mid-training; runs interrupted on one executor
and resumed on the other; Ctrl-C cancels what is queued. Skipped without Ray, except under CI=true,
where CI installs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tiny_suite import run, same_results, suite_text

from kdbench.cli import main
from kdbench.pipeline import jobs

if os.environ.get("CI") == "true":
    import ray  # CI installs the ray extra: a missing Ray is a failure there
else:
    ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def suite_file(tmp_path: Path, epochs: int = 2) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(suite_text("tiny_ray", epochs))
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    assert run(suite_file(out), out) == 0
    return out / "tiny_ray" / "latest"


def test_ray_gives_the_local_executors_results_byte_for_byte(cluster, local_run, tmp_path, capsys):
    # evaluations reserve 1.5 CPUs (and still run one thread: the same numbers as --threads 1)
    assert (
        run(suite_file(tmp_path), tmp_path, "--executor", "ray", "--eval-group", 2, "--cpus-per-job", "1,evaluate=1.5")
        == 0
    )
    err = capsys.readouterr().err
    assert "ray: 10 job(s) in 8 task(s) on 1 node(s)" in err  # 5 trainings, 5 evaluations in groups of 2
    got = tmp_path / "tiny_ray" / "latest"
    same_results(local_run, got)
    manifest = json.loads((got / "manifest.json").read_text())
    assert manifest["executor"] == {
        "name": "ray",
        "address": None,
        "cpus_per_job": {"teacher": 1.0, "student": 1.0, "evaluate": 1.5},
        "gpus_per_job": {"teacher": 0.0, "student": 0.0, "evaluate": 0.0},
        "eval_group": 2,
        "max_retries": 3,
    }
    assert all(j["node"] and j["wall_s"] > 0 and j["attempts"] == 1 and not j["cached"] for j in manifest["jobs"])
    assert {j["kind"]: j["resources"] for j in manifest["jobs"]} == {
        "teacher": {"CPU": 1.0},
        "student": {"CPU": 1.0},
        "evaluate": {"CPU": 1.5},
    }
    hashes = {j["hash"] for j in json.loads((local_run / "manifest.json").read_text())["jobs"]}
    assert {j["hash"] for j in manifest["jobs"]} == hashes  # execution settings are not in the hashes
    assert not (tmp_path / "_cache" / "attempts").exists() or not any((tmp_path / "_cache" / "attempts").iterdir())


def test_ctrl_c_on_ray_cancels_and_the_run_resumes_locally(cluster, local_run, tmp_path, capsys):
    # the driver in its own process, joining this module's cluster by --ray-address; Ctrl-C once a job is done
    out, suite = tmp_path / "out", suite_file(tmp_path)
    store = out / "_cache" / "jobs"
    cmd = [
        sys.executable,
        "-m",
        "kdbench",
        "run",
        str(suite),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--executor",
        "ray",
        "--ray-address",
        "auto",
    ]
    # Ctrl-C's default disposition in the child, as a driver started from a terminal has: an ignored
    # SIGINT is inherited, and a test run started in the background by a non-interactive shell has one
    driver = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, KDBENCH_PROGRESS="0"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 600  # a loaded machine can take minutes over the first job
    while time.time() < deadline and driver.poll() is None:
        if any((p / "job.json").is_file() for p in store.glob("*") if not p.name.startswith(".")):
            driver.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    done = sorted(p.name for p in store.iterdir() if (p / "job.json").is_file())
    assert 1 <= len(done) < 10
    time.sleep(2.0)  # the cancelled tasks stay cancelled: nothing else finishes
    assert sorted(p.name for p in store.iterdir() if (p / "job.json").is_file()) == done
    assert run(suite, out) == 0
    assert f"{len(done)} of 10 jobs already done (cached)" in capsys.readouterr().err
    same_results(local_run, out / "tiny_ray" / "latest")


def _kill_a_training_worker(store: Path, training: set[str], killed: dict) -> None:
    """SIGKILL the Ray worker of the first training job seen running (its attempt record names the
    worker's pid; its output folder exists)."""
    deadline = time.time() + 120
    while time.time() < deadline and not killed:
        for marker in store.glob("attempts/*/*"):
            if marker.name not in training:
                continue
            lines = marker.read_text().splitlines()
            parts = list((store / "jobs").glob(f".{marker.name}*.part"))
            if lines and parts:
                pid = int(lines[0].split()[0])
                os.kill(pid, signal.SIGKILL)
                killed[marker.name] = pid
                return
        time.sleep(0.02)


def test_interrupted_locally_resumes_on_ray_and_a_killed_worker_reruns_its_job(
    cluster, local_run, tmp_path, monkeypatch, capsys
):
    out, suite = tmp_path / "out", suite_file(tmp_path)
    real, calls = jobs.JobRunner.run_student, []

    def interrupt_third_student(self, js, outs):
        calls.append(js[0].id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, js, outs)

    monkeypatch.setattr(jobs.JobRunner, "run_student", interrupt_third_student)
    assert run(suite, out) == 130
    monkeypatch.setattr(jobs.JobRunner, "run_student", real)
    capsys.readouterr()
    # on Ray, the worker of one of the two students left to train is killed mid-training
    training = {
        j["hash"]
        for j in json.loads((local_run / "manifest.json").read_text())["jobs"]
        if j["kind"] in ("teacher", "student")
    }
    killed: dict = {}
    killer = threading.Thread(target=_kill_a_training_worker, args=(out / "_cache", training, killed))
    killer.start()
    code = run(suite, out, "--executor", "ray")
    killer.join()
    err = capsys.readouterr().err
    assert code == 0 and killed, err[-3000:]
    assert "3 of 10 jobs already done (cached); 7 to run" in err  # the teacher and two students
    got = out / "tiny_ray" / "latest"
    same_results(local_run, got)
    (job_hash,) = killed
    records = {j["hash"]: j for j in json.loads((got / "manifest.json").read_text())["jobs"]}
    assert records[job_hash]["attempts"] == 2  # the manifest shows the retry
    assert not list((out / "_cache" / "jobs").glob("*.part"))  # the lost attempt left nothing behind


def test_resources_per_job_kind():
    from kdbench.executors.ray_config import RayError, RayOptions

    opts = RayOptions.from_env(cpus_per_job="2,evaluate=1", gpus_per_job="evaluate=0.25")
    assert opts.cpus_per_job == {"teacher": 2.0, "student": 2.0, "evaluate": 1.0}
    assert opts.gpus_per_job == {"teacher": 0.0, "student": 0.0, "evaluate": 0.25}
    assert opts.threads == {"teacher": 2, "student": 2, "evaluate": 1}
    assert opts.resources("evaluate") == {"num_cpus": 1.0, "num_gpus": 0.25}
    assert RayOptions.from_env(gpus_per_job="0.5").gpus_per_job == dict.fromkeys(
        ("teacher", "student", "evaluate"), 0.5
    )
    assert RayOptions.from_env(cpus_per_job="student=1.5").threads == {"teacher": 1, "student": 1, "evaluate": 1}
    for given, message in (
        (
            {"gpus_per_job": "train=1"},
            "--gpus-per-job 'train=1': 'train' is not a job kind; expected one of teacher, student, evaluate",
        ),
        ({"cpus_per_job": "two"}, "--cpus-per-job 'two': expected a number"),
        ({"cpus_per_job": "1,teacher=0"}, "--cpus-per-job: teacher 0; expected more than 0"),
        ({"gpus_per_job": "1.5"}, "--gpus-per-job: teacher 1.5; above 1 GPU a task must ask for a whole number"),
    ):
        with pytest.raises(RayError, match=message.replace("(", r"\(")):
            RayOptions.from_env(**given)
    os.environ["KDBENCH_RAY_GPUS_PER_JOB"] = "0.25,teacher=1"
    try:
        assert RayOptions.from_env().gpus_per_job == {"teacher": 1.0, "student": 0.25, "evaluate": 0.25}
        assert RayOptions.from_env(gpus_per_job="0").gpus_per_job["teacher"] == 0.0  # the command line wins
        os.environ["KDBENCH_RAY_GPUS_PER_JOB"] = "teacher=-1"
        with pytest.raises(RayError, match=r"\$KDBENCH_RAY_GPUS_PER_JOB: teacher -1; expected 0 or more"):
            RayOptions.from_env()
    finally:
        del os.environ["KDBENCH_RAY_GPUS_PER_JOB"]


def test_ray_flags_need_the_ray_executor(tmp_path, capsys):
    assert main(["run", str(suite_file(tmp_path)), "--out", str(tmp_path), "--gpus-per-job", "0.25"]) == 2
    assert "--gpus-per-job: only with --executor ray" in capsys.readouterr().err
    os.environ["KDBENCH_RAY_EVAL_GROUP"] = "many"
    try:
        assert main(["run", str(suite_file(tmp_path)), "--out", str(tmp_path), "--executor", "ray"]) == 2
        assert "$KDBENCH_RAY_EVAL_GROUP='many': expected a number" in capsys.readouterr().err
    finally:
        del os.environ["KDBENCH_RAY_EVAL_GROUP"]


def test_the_local_executor_never_imports_ray(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from kdbench.cli import main
        assert main(["run", {str(suite_file(tmp_path))!r}, "--out", {str(tmp_path)!r}, "--device", "cpu"]) == 0
        assert "ray" not in sys.modules, "ray was imported"
    """)
    env = dict(os.environ, KDBENCH_PROGRESS="0")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_suite_with_a_plugin_runs_on_ray_as_locally(cluster, tmp_path):
    """The workers import the suite's plugin from the source the task carries, not from the path."""
    from kdbench.config import plugins

    plugins.unload_all()
    source = Path(__file__).parent / "plugins" / "loss_only.py"
    (tmp_path / "loss.py").write_text(source.read_text())
    suite = tmp_path / "suite.yaml"
    suite.write_text(suite_text("tiny_ray", 1, "kd_top1", ("loss.py",)))
    try:
        assert run(suite, tmp_path / "local") == 0
        assert run(suite, tmp_path / "ray", "--executor", "ray") == 0
        same_results(tmp_path / "local" / "tiny_ray" / "latest", tmp_path / "ray" / "tiny_ray" / "latest")
    finally:
        plugins.unload_all()
