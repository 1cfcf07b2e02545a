"""What every parameters model of a suite refuses: keys it does not know, and NaN or infinite
numbers (YAML's `.nan` and `.inf`), which would otherwise pass `ge`/`le` bounds left open."""

from pydantic import ConfigDict

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
