"""The pattern suite and model names follow: checked when a suite is read and again when a run
directory is, so a hand-edited or foreign metrics.csv cannot carry markup into a report."""

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
