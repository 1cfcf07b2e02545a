"""What the Ray executor costs per job, against the local executor, on a plan of tiny jobs.

A synthetic suite with one student over N/2 seeds: N/2 trainings of one optimisation step and
N/2 evaluations of 64 clean images, so nearly all the time is the executor's. Each executor runs
the suite from an empty job store in a fresh process (the driver), which reports its peak memory.
Ray runs on a local cluster of --cpus CPUs.

    python scripts/bench_executor.py --jobs 1000 --cpus 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SUITE = """
name: tiny_jobs
dataset: {{name: synthetic, params: {{n_train: 64, n_test: 64}}}}
train: {{epochs: 1, batch_size: 64, lr: 0.05, augment: false}}
students:
  s: {{arch: cnn_tiny, method: baseline, seeds: [{seeds}]}}
evaluate: {{batch_size: 64, saliency: 0}}
"""

DRIVER = """
import resource, sys, time
from kdbench.cli import main
args = sys.argv[1:]
cpus = int(args.pop())
if "ray" in args:
    import ray
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
start = time.perf_counter()
code = main(args)
print("WALL", time.perf_counter() - start, file=sys.stderr)
print("RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def drive(suite: Path, out: Path, cpus: int, *extra: str) -> dict:
    cmd = [
        sys.executable,
        "-c",
        DRIVER,
        "run",
        str(suite),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--threads",
        "1",
        *extra,
        str(cpus),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, KDBENCH_PROGRESS="0"), check=False)
    if done.returncode != 0:
        sys.exit(f"driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
    values = dict(line.split(" ", 1) for line in done.stderr.splitlines() if line.startswith(("WALL ", "RSS_MB ")))
    manifest = json.loads((out / "tiny_jobs" / "latest" / "manifest.json").read_text())
    return {
        "wall": float(values["WALL"]),
        "rss": float(values["RSS_MB"]),
        "jobs": len(manifest["jobs"]),
        "in_jobs": sum(j["wall_s"] for j in manifest["jobs"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000, help="jobs in the plan (half trainings, half evaluations)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (one per task)")
    ap.add_argument("--eval-group", type=int, default=8, help="evaluation jobs scored together, on both executors")
    args = ap.parse_args()
    seeds = ", ".join(str(i) for i in range(args.jobs // 2))
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite.yaml"
        suite.write_text(textwrap.dedent(SUITE).format(seeds=seeds))
        t0 = time.perf_counter()
        local = drive(suite, Path(tmp) / "local", args.cpus, "--eval-group", str(args.eval_group))
        ray_ = drive(suite, Path(tmp) / "ray", args.cpus, "--executor", "ray", "--eval-group", str(args.eval_group))
        total = time.perf_counter() - t0
    print(
        f"{local['jobs']} jobs (1-step trainings and 64-image evaluations), {args.cpus} CPUs, one torch thread per "
        "job; "
        f"both runs took {total:.0f} s"
    )
    print(
        f"{'executor':<8} {'wall s':>8} {'jobs/s':>8} {'in jobs s':>10} {'outside jobs, per job':>22} "
        f"{'driver peak RSS':>16}"
    )
    for name, r, workers in (("local", local, 1), ("ray", ray_, args.cpus)):
        # the time the workers were not inside a job, spread over the jobs: scheduling, data loading, process start
        outside = (r["wall"] * workers - r["in_jobs"]) / r["jobs"]
        print(
            f"{name:<8} {r['wall']:8.1f} {r['jobs'] / r['wall']:8.1f} {r['in_jobs']:10.1f} {outside * 1000:19.1f} ms "
            f"{r['rss']:13.0f} MB"
        )


if __name__ == "__main__":
    main()
