"""The one base of every error a user can cause (a bad suite, file, flag or data root): the command
line prints it without a traceback and exits with its code; anything else is a bug."""

from kdbench.util.exit_codes import ExitCode


class UserError(Exception):
    exit_code: ExitCode = ExitCode.BAD_INPUT


class CodeFailed(UserError):
    """A user's own code (a plugin's network, method or condition) that broke its contract while a
    job ran: exit 1, with a sentence naming the job, the code's file and line and what was wrong."""

    exit_code = ExitCode.FAIL
