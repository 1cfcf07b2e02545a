"""Whether two runs measured the same thing: evaluation specification, test examples, provenance."""

from __future__ import annotations

import numpy as np

from kdbench.results.contract import ResultsError, Run
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode


class NotComparable(UserError):
    exit_code = ExitCode.NOT_COMPARABLE

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the runs are not comparable:\n  - " + "\n  - ".join(problems))


REQUIRED = ("eval_spec_hash", "example_ids_sha256")


def require_provenance(run: Run) -> None:
    for key in REQUIRED:
        if not run.manifest.get(key):
            raise ResultsError(
                run.path / "manifest.json", f"lacks '{key}', which the gate needs to know the runs are comparable"
            )


def _dict_diff(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: only in the run ({b[k]!r})")
            elif k not in b:
                out.append(f"{p}: only in the baseline ({a[k]!r})")
            else:
                out += _dict_diff(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _dict_diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: baseline {a!r}, run {b!r}"]


def _evaluation_spec(manifest: dict):
    return manifest.get("eval_spec")


def _suite_evaluate(manifest: dict):
    suite = manifest.get("suite")
    return suite.get("evaluate") if isinstance(suite, dict) else None


def comparability_problems(base: Run, run: Run) -> list[str]:
    problems = []
    bm, rm = base.manifest, run.manifest
    if bm.get("eval_spec_hash") != rm.get("eval_spec_hash"):
        msg = (
            f"different evaluation specification (eval_spec_hash {bm.get('eval_spec_hash')} in the baseline, "
            f"{rm.get('eval_spec_hash')} in the run)"
        )
        be, re_, name = _evaluation_spec(bm), _evaluation_spec(rm), "eval_spec"
        if not (isinstance(be, dict) and isinstance(re_, dict)):
            be, re_, name = _suite_evaluate(bm), _suite_evaluate(rm), "evaluate"
        if isinstance(be, dict) and isinstance(re_, dict):
            diffs = _dict_diff(be, re_, name)
            if diffs:
                msg += "; " + "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
        problems.append(msg)
    same_index = len(base.example_index) == len(run.example_index) and np.array_equal(
        base.example_index, run.example_index
    )
    if bm.get("example_ids_sha256") != rm.get("example_ids_sha256") or not same_index:
        common = len(np.intersect1d(base.example_index, run.example_index))
        order = (
            " (the same examples in another order)"
            if common == len(base.example_index) == len(run.example_index) and not same_index
            else ""
        )
        problems.append(
            f"different test examples{order}: the baseline scored {len(base.example_index)}, the run "
            f"{len(run.example_index)}, "
            f"{common} in common (example_ids_sha256 {bm.get('example_ids_sha256')} vs {rm.get('example_ids_sha256')})"
        )
    return problems
