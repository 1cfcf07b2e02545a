"""One RobustBench model-info JSON per evaluated network, to set kdbench's numbers beside the
leaderboard's (`kdbench export --format robustbench -o DIR`).

Laid out as RobustBench's own `model_info/<dataset>/<threat model>/<name>.json`, with every field
of its `ModelInfo` (robustbench/utils.py), None where kdbench cannot know it, and numbers as its
`update_json` writes them: accuracies as strings of percentages rounded to 2 decimals, eps as a
float. A network is a (model, seed) of the run, named `<model>_seed<k>`.

- Linf and L2: `clean_acc` and `autoattack_acc` where AutoAttack ran in its standard version in that
  threat model (RobustBench's protocol), at RobustBench's radius (8/255; L2 0.5) when it ran there,
  else at its largest epsilon. Other versions are not the leaderboard's number: no file.
- corruptions: `corruptions_acc`, the mean over the 15 benchmark corruptions at severities 1-5
  (RobustBench's definition), only when the run has all 75 cells. `corruptions_mce` is the mCE
  against the suite's `published_errors` table (AlexNet's, for RobustBench's ImageNet-C) when one
  was given, else None.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdbench.exports import register_exporter
from kdbench.util.atomic import write_text

# robustbench.utils.ModelInfo's fields, in its order (a test checks them against the installed package)
MODEL_INFO_FIELDS = (
    "link",
    "name",
    "authors",
    "additional_data",
    "number_forward_passes",
    "dataset",
    "venue",
    "architecture",
    "eps",
    "clean_acc",
    "reported",
    "corruptions_acc",
    "corruptions_acc_3d",
    "corruptions_mce",
    "corruptions_mce_3d",
    "autoattack_acc",
    "footnote",
)
STANDARD_EPS = {"Linf": 8 / 255, "L2": 0.5}  # RobustBench's CIFAR radii per threat model
SEVERITIES = ("1", "2", "3", "4", "5")


def percent(accuracy: float) -> str:
    """RobustBench's format: str(round(accuracy * 100, 2))."""
    return str(round(float(accuracy) * 100, 2))


def autoattack_versions(suite: dict) -> dict[str, str]:
    """{norm: AutoAttack's version} for each threat model the suite ran AutoAttack in (its own
    entry, or the robust preset's, which runs the standard version)."""
    ev = (suite or {}).get("evaluate") or {}
    out = {}
    for key in ("robust", "autoattack"):
        if isinstance(ev.get(key), dict):
            out[ev[key].get("norm", "Linf")] = ev[key].get("version", "standard")
    return out


def model_infos(data) -> dict[str, dict]:
    """{relative path: model info} for every network the run evaluated."""
    from kdbench.evaluation.conditions.corruptions import BENCHMARK
    from kdbench.util.names import attack_condition, corruption_condition

    m = data.run.metrics
    manifest = data.run.manifest
    suite = manifest.get("suite") if isinstance(manifest.get("suite"), dict) else {}
    dataset = str(((suite.get("dataset") or {}).get("name")) or "cifar10")
    versions = autoattack_versions(suite)
    run_id = manifest.get("run_id") or data.run.path.resolve().name
    cells = {(corruption_condition(c), s) for c in BENCHMARK for s in SEVERITIES}
    out = {}
    for (model, seed), rows in m.groupby(["model", "seed"], sort=False):
        first = rows.iloc[0]
        clean = rows[rows["condition"] == "clean"]
        if clean.empty:
            continue
        base = dict.fromkeys(MODEL_INFO_FIELDS)
        footnote = (
            f"kdbench {manifest.get('kdbench_version', '?')}, suite "
            f"{manifest.get('suite_name') or suite.get('name', '?')}, "
            f"run {run_id}, method {first['method']}, seed {seed}, {int(clean['n'].iloc[0])} test examples"
        )
        base |= {
            "name": f"{model} (seed {seed})",
            "dataset": dataset,
            "architecture": str(first["arch"]),
            "number_forward_passes": 1,
            # trained here on the suite's data: no extra data; a loaded teacher's training is not known here
            "additional_data": None if first["method"] in ("checkpoint", "robustbench") else False,
            "clean_acc": percent(clean["accuracy"].iloc[0]),
        }
        for norm, version in versions.items():
            aa = rows[rows["condition"] == attack_condition("autoattack", norm)]
            if version != "standard" or aa.empty:
                continue
            standard = STANDARD_EPS[norm]
            eps = aa["level"].astype(float)
            at = (eps - standard).abs().idxmin() if ((eps - standard).abs() < 1e-6).any() else eps.idxmax()
            row = aa.loc[at]
            value = float(row["level"])
            value = standard if abs(value - standard) < 1e-6 else value  # metrics.csv keeps 6 digits
            out[f"{dataset}/{norm}/{model}_seed{seed}.json"] = base | {
                "eps": value,
                "autoattack_acc": percent(row["accuracy"]),
                "footnote": footnote + f"; AutoAttack (standard, {norm}) at eps {value:.6g}",
            }
        corr = rows[rows["group"] == "corruption"]
        if cells <= set(zip(corr["condition"], corr["level"].astype(str))):
            keep = corr[[(c, str(lv)) in cells for c, lv in zip(corr["condition"], corr["level"])]]
            mce = published_mce_of(data.run.summary, model, seed)
            out[f"{dataset}/corruptions/{model}_seed{seed}.json"] = base | {
                "corruptions_acc": percent(keep["accuracy"].mean()),
                "corruptions_mce": None if mce is None else str(round(mce, 2)),
                "footnote": footnote
                + "; corruptions_acc over the 15 corruptions x 5 severities; "
                + (
                    "corruptions_mce against the suite's published_errors (AlexNet's for ImageNet-C)"
                    if mce is not None
                    else "corruptions_mce not given (RobustBench's is relative to AlexNet's published errors: "
                    "give them as evaluate.corruptions.published_errors)"
                ),
            }
    return out


def published_mce_of(summary, model: str, seed: int) -> float | None:
    """The network's mCE (percent) against the suite's published error table, over all 75 cells."""
    if summary is None or summary.empty:
        return None
    row = summary[
        (summary["statistic"] == "mce_published")
        & (summary["model"] == model)
        & (summary["seed"] == int(seed))
        & (summary["cells"] == 75)
    ]
    return None if row.empty else float(row["value"].iloc[0])


@register_exporter("robustbench")
def write_model_infos(data, out: Path) -> list[Path]:
    """One RobustBench model-info JSON per network, in their field names and number format, under the
    directory `out`.

    Returns the files written (none when no network has what RobustBench needs)."""
    written = []
    for rel, info in model_infos(data).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(info, indent=2) + "\n")
        written.append(path)
    return written
