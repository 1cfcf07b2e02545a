"""Run the example GitHub workflow's steps locally, in order, as GitHub would for one event.

    python scripts/run_workflow.py --event push --data-root ../shared/data/cifar10-jpeg
    python scripts/run_workflow.py --event pull_request --data-root ../shared/data/cifar10-jpeg

Each `run:` step runs in bash (with `set -e`) and the workflow's `env:`, in a scratch folder
that holds links to the repository's `suites/` and `tests/`. `if:` conditions are evaluated for
the event (main branch on push). The Actions cache is a local folder (`--cache`, kept between
calls, so a push blesses the baseline that a later pull request restores); a cache path that
already exists counts as restored, which is how `--data-root` stands in for the CIFAR-10 cache.
Checkout, setup-python and upload-artifact are skipped, and so is the install step unless
`--install`: the current environment is used. `--env KEY=VALUE` overrides the workflow's env
(e.g. a smaller SUITE). Exits with the first failing step's code; the job summary is printed at
the end. Not act: no containers, and only the expressions this workflow uses are understood.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "robustness-gate.yml"
SKIPPED = ("actions/checkout", "actions/setup-python", "actions/upload-artifact")


def substitute(text: str, env: dict, outputs: dict) -> str:
    def value(m):
        expr = m.group(1).strip()
        if expr.startswith("env."):
            return env[expr[4:]]
        if expr == "github.sha":
            return env["GITHUB_SHA"]
        if expr.startswith("steps."):
            return outputs.get(expr, "")
        raise SystemExit(f"{WORKFLOW.name}: unknown expression ${{{{ {expr} }}}}")

    return re.sub(r"\$\{\{(.*?)\}\}", value, str(text))


def condition(expr: str | None, event: str, outputs: dict) -> bool:
    """The workflow's `if:`, for the few forms it uses: always(), ==, !=, && and ||."""
    if expr is None:
        return True
    known = {
        "always()": "True",
        "github.event_name": repr(event),
        "github.ref": repr("refs/heads/main" if event == "push" else "refs/pull/1/merge"),
    }
    text = expr
    for name, val in known.items():
        text = text.replace(name, val)
    text = re.sub(
        r"steps\.([\w-]+)\.outputs\.([\w-]+)",
        lambda m: repr(outputs.get(f"steps.{m.group(1)}.outputs.{m.group(2)}", "")),
        text,
    )
    text = text.replace("&&", " and ").replace("||", " or ")
    rest = re.sub(r"'[^']*'|\bTrue\b|\band\b|\bor\b|==|!=|[()\s]", "", text)
    if rest:  # anything but literals and operators: an expression this runner does not know
        raise SystemExit(f"{WORKFLOW.name}: cannot evaluate `if: {expr}` (left: {rest!r})")
    return bool(eval(text, {"__builtins__": {}}, {}))  # only literals and operators remain (checked above)


def cache_step(
    action: str, with_: dict, cache: Path, work: Path, env: dict, outputs: dict, step_id: str | None
) -> None:
    path = work / substitute(with_["path"], env, outputs)  # an absolute path stays as it is
    key = substitute(with_["key"], env, outputs)
    if action.endswith("/save"):
        target = cache / key
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(path, target)
        print(f"  cache saved: {path} as {key}")
        return
    hit = path.exists()
    if not hit:
        prefixes = substitute(with_.get("restore-keys", ""), env, outputs).split()
        found = (cache / key) if (cache / key).exists() else None
        if found is None:
            matches = sorted(
                (d for d in cache.glob("*") if any(d.name.startswith(p) for p in prefixes)),
                key=lambda d: d.stat().st_mtime,
            )
            found = matches[-1] if matches else None
        if found is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(found, path)
            hit = found.name == key
            print(f"  cache restored: {found.name} to {path}")
        else:
            print(f"  cache miss: {key}")
    else:
        print(f"  {path} exists: counted as restored")
    if step_id:
        outputs[f"steps.{step_id}.outputs.cache-hit"] = "true" if hit else "false"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--event", choices=("push", "pull_request"), required=True)
    ap.add_argument("--data-root", help="a local CIFAR-10 copy, standing in for the workflow's CIFAR-10 cache")
    ap.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "kdbench-workflow-cache"),
        help="the simulated Actions cache (default: %(default)s)",
    )
    ap.add_argument("--workdir", help="scratch folder for the steps' outputs (default: a new temporary one)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="override the workflow's env")
    ap.add_argument("--install", action="store_true", help="also run the install step")
    args = ap.parse_args(argv)

    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kdbench-workflow-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("suites", "tests"):
        if not (work / name).exists():
            (work / name).symlink_to(ROOT / name)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    summary = work / "step_summary.md"
    summary.write_text("")
    env = {**os.environ, **{k: str(v) for k, v in workflow.get("env", {}).items()}}
    env.update(
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_SHA=subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "local",
    )
    if args.data_root:
        env["DATA_ROOT"] = str(Path(args.data_root).resolve())
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    outputs: dict[str, str] = {}
    print(f"workflow {WORKFLOW.relative_to(ROOT)}, event {args.event}, in {work}")
    for step in workflow["jobs"]["gate"]["steps"]:
        name = step.get("name") or step.get("uses")
        if not condition(step.get("if"), args.event, outputs):
            print(f"- {name}: skipped (if: {step['if']})")
            continue
        uses = step.get("uses", "")
        if uses.startswith(SKIPPED) or ("pip install" in step.get("run", "") and not args.install):
            print(f"- {name}: skipped (local run)")
            continue
        print(f"- {name}")
        if uses.startswith("actions/cache/"):
            cache_step(uses.split("@")[0], step.get("with", {}), cache, work, env, outputs, step.get("id"))
            continue
        if uses:
            print(f"{name}: unknown action {uses}", file=sys.stderr)
            return 2
        script = substitute(step["run"], env, outputs)
        code = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env, check=False).returncode
        if code:
            print(f"step '{name}' failed with exit code {code}", file=sys.stderr)
            return code
    print("\n--- job summary ---\n" + summary.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
