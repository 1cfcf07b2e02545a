"""CliError: a message for the user, printed without a traceback, and its exit code."""

from kdbench.util.exit_codes import ExitCode


class CliError(Exception):
    def __init__(self, message: str, code: int = ExitCode.BAD_INPUT):
        super().__init__(message)
        self.code = code
