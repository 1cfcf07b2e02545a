"""The pattern suite and model names follow: checked when a suite is read and again when a run
directory is, so a hand-edited or foreign metrics.csv cannot carry markup into a report."""

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# Results format 2: a CIFAR-10-C corruption's rows in metrics.csv are named "c:<corruption>", so
# that `condition == "gaussian_noise"` means the noise sweep alone, never the corruption of the
# same name. Suites still list corruptions by their plain names; summary.csv's `corruption`
# column holds plain names too (it names corruptions only).
RESULTS_FORMAT = 2
CORRUPTION_PREFIX = "c:"


def corruption_condition(name: str) -> str:
    """metrics.csv's condition for corruption `name`: "fog" -> "c:fog"."""
    return name if name.startswith(CORRUPTION_PREFIX) else CORRUPTION_PREFIX + name


def corruption_name(condition: str) -> str:
    """The corruption a condition names: "c:fog" -> "fog" (a plain name is returned as it is)."""
    return condition.removeprefix(CORRUPTION_PREFIX)
