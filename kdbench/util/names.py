"""The strings that name things across the pipeline, defined once: the pattern of suite and model
names (checked when a suite is read and again when a run directory is, so a hand-edited or foreign
metrics.csv cannot carry markup into a report), condition groups and their order, the worst-case
rows and the threat models' names, the data splits and the CIFAR-10-C corruption names."""

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# Names become folder and file names (OUT/<suite>/<stamp>/, per-model files): kept well under the
# file systems' 255 bytes, with room for what kdbench appends.
MAX_NAME = 64
# What kdbench itself writes in `--out` beside the suites' folders (the job store is `_cache`, which
# NAME refuses already): a suite may not be named as one of them.
INDEX_FILE = "runs.sqlite"
OUT_RESERVED = (
    INDEX_FILE,
    f"{INDEX_FILE}-journal",
    f"{INDEX_FILE}-wal",
    f"{INDEX_FILE}-shm",
    "mlruns",
    "tensorboard",
    "wandb",
)

# Results format 2: a CIFAR-10-C corruption's rows in metrics.csv are named "c:<corruption>", so
# that `condition == "gaussian_noise"` means the noise sweep alone, never the corruption of the
# same name. Suites still list corruptions by their plain names; summary.csv's `corruption`
# column holds plain names too (it names corruptions only).
# Format 3: a metrics row may cover only the first n of the evaluated examples (a condition's own n).
RESULTS_FORMAT = 3
CORRUPTION_PREFIX = "c:"


def corruption_condition(name: str) -> str:
    """metrics.csv's condition for corruption `name`: "fog" -> "c:fog"."""
    return name if name.startswith(CORRUPTION_PREFIX) else CORRUPTION_PREFIX + name


def corruption_name(condition: str) -> str:
    """The corruption a condition names: "c:fog" -> "fog" (a plain name is returned as it is)."""
    return condition.removeprefix(CORRUPTION_PREFIX)


SPLITS = ("train", "test")

# metrics.csv's condition groups in reading order (reports, the gate, compare)
GROUP_ORDER = ("clean", "noise", "attack", "corruption")
# the per-example worst case over a suite's attacks: the robust accuracy a report headlines
WORST_CASE = "worst_case"

# Threat models. An L2 attack's rows in metrics.csv are named "<attack>_l2" ("pgd_l2", and its
# worst case "worst_case_l2"), so Linf and L2 radii are never read as one column; Linf rows keep
# their plain names.
NORMS = ("Linf", "L2")
L2_SUFFIX = "_l2"


def attack_condition(name: str, norm: str = "Linf") -> str:
    """metrics.csv's condition for attack `name` under `norm`: ("pgd", "L2") -> "pgd_l2"."""
    return name + L2_SUFFIX if norm == "L2" else name


def norm_of(condition: str) -> str:
    """The threat model an attack row belongs to: "pgd_l2" -> "L2", "pgd" -> "Linf"."""
    return "L2" if condition.endswith(L2_SUFFIX) else "Linf"


def is_worst_case(condition: str) -> bool:
    """A derived worst-case row, of either norm."""
    return condition in (WORST_CASE, WORST_CASE + L2_SUFFIX)


# CIFAR-10-C (Hendrycks & Dietterich, 2019): the benchmark's 15 (the mean corruption accuracy and
# mCE average these) and the 4 extras, in the order of the reference generator
BENCHMARK_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


def metric_rank(group: str, condition: str, level: float, first_seen: dict[str, int]) -> tuple:
    """Where a metric sorts: by group (GROUP_ORDER, others after), the worst case first within its
    group, other conditions as first seen, then by level."""
    g = GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)
    return g, -1 if is_worst_case(condition) else first_seen[condition], level


def run_stem(run_dir) -> str:
    """<suite>-<run-id> for results/<suite>/<run-id>/: the stem of its report's and exports' names."""
    from pathlib import Path

    run_dir = Path(run_dir).resolve()
    return f"{run_dir.parent.name}-{run_dir.name}"
