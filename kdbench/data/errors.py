"""The one error type the data layer raises for missing, malformed or unusable data."""

from __future__ import annotations

from kdbench.util.errors import UserError


class DataError(UserError):
    """Data that cannot be used as asked. The message names the file or folder at fault and says
    what was expected, so the CLI can print it as is (no traceback) and the user can fix it."""
