"""CliError: a message for the user, printed without a traceback, and its exit code."""

from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode


class CliError(UserError):
    def __init__(self, message: str, code: int = ExitCode.BAD_INPUT):
        super().__init__(message)
        self.exit_code = code
