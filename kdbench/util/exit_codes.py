"""The exit codes of every kdbench command, defined once: the command line returns them and the
gate decides among them."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAIL = 1  # a reported failure: a gate regression
    BAD_INPUT = 2  # suite, flags or files
    NOT_COMPARABLE = 3  # gate, compare: runs that measured different things
    INCONCLUSIVE = 4  # gate --strict: a metric whose test could not see a fall of its tolerance
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
