"""The one base of every error a user can cause (a bad suite, file, flag or data root): the command
line prints it without a traceback and exits with its code; anything else is a bug."""

from kdbench.util.exit_codes import ExitCode


class UserError(Exception):
    exit_code: ExitCode = ExitCode.BAD_INPUT
