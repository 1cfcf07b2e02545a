"""The example GitHub workflow, its steps run in order by scripts/run_workflow.py: a pull request
before main has a baseline only notes it; main blesses one into the (simulated) Actions cache; the
next pull request restores it and gates against it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_workflow_blesses_on_main_and_gates_pull_requests(tmp_path):
    suite = tmp_path / "wf.yaml"
    text = (ROOT / "tests" / "suites" / "synthetic.yaml").read_text()
    suite.write_text(
        text.replace("epochs: 4", "epochs: 1")
        .replace("n_train: 800", "n_train: 200")
        .replace("  n: 120", "  n: 40")
        .replace("\nname: synthetic", "\nname: wf")
        # PGD and the masking checks: nothing the workflow's steps depend on
        .split("  pgd:")[0]
        + "  diagnostics: {enabled: false}\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def event(name, work):
        argv = [
            sys.executable,
            str(ROOT / "scripts" / "run_workflow.py"),
            "--event",
            name,
            "--cache",
            str(tmp_path / "cache"),
            "--workdir",
            str(tmp_path / work),
            "--data-root",
            str(tmp_path),
            "--env",
            f"SUITE={suite}",
            "--env",
            "SUITE_NAME=wf",
            "--env",
            "BASELINE=baseline-ci/wf",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    first = event("pull_request", "pr1")
    assert "no baseline blessed on main yet" in first and "kdbench gate:" not in first
    main = event("push", "main")
    assert "blessed results-ci/wf/latest as the baseline baseline-ci/wf" in main and "cache saved" in main
    assert "- Gate against main's baseline: skipped" in main
    second = event("pull_request", "pr2")
    assert "cache restored: kdbench-baseline-wf-" in second
    summary = (tmp_path / "pr2" / "step_summary.md").read_text()
    assert "## At a glance" in summary and "## kdbench gate: " in summary  # the report and the gate, in the job summary
