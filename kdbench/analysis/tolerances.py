"""The gate's settings: tolerances per group, condition or condition:level, and alpha; from flags,
the suite's `gate:` section, or the defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kdbench.results.contract import ResultsError, Run
from kdbench.util.levels import parse_fraction

DEFAULT_TOLERANCE_PP = 1.0
DEFAULT_ALPHA = 0.05


@dataclass
class Tolerances:
    """Percentage points a metric may fall before it can regress; the most specific key wins:
    'condition:level' (level as stored, or k/255 for epsilons), then 'condition', then the group
    ('clean', 'noise', 'attack', 'corruption'), then the default."""

    default: float = DEFAULT_TOLERANCE_PP
    by_key: dict[str, float] = field(default_factory=dict)

    def lookup(self, group: str, condition: str, level: str) -> float:
        for key, tol in self.by_key.items():
            if ":" in key:
                cond, lvl = key.rsplit(":", 1)  # corruption conditions have a colon of their own: "c:fog:3"
                if cond == condition and _same_level(lvl, level):
                    return tol
        if condition in self.by_key:
            return self.by_key[condition]
        if group in self.by_key:
            return self.by_key[group]
        return self.default


def _level_number(text: str) -> float | None:
    try:
        return parse_fraction(str(text))
    except ValueError:
        return None


def _same_level(wanted: str, stored: str) -> bool:
    a, b = _level_number(wanted), _level_number(stored)
    if a is None or b is None:
        return str(wanted).strip() == str(stored)
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-9)


def _non_negative(value, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number of percentage points, found {value!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{where}: a tolerance must be a finite number >= 0, found {value!r}")
    return v


def parse_tolerances(args: list[str] | None) -> tuple[float | None, dict[str, float]]:
    """`--tolerance PP` sets the default; `--tolerance KEY=PP` one group, condition or condition:level."""
    default, by_key = None, {}
    for arg in args or []:
        if "=" in arg:
            key, value = arg.split("=", 1)
            if not key.strip():
                raise ValueError(f"--tolerance {arg!r}: the key before '=' is empty")
            by_key[key.strip()] = _non_negative(value, f"--tolerance {arg}")
        else:
            default = _non_negative(arg, f"--tolerance {arg}")
    return default, by_key


def suite_gate_settings(run: Run) -> tuple[float | None, dict[str, float], float | None]:
    """The optional `gate:` section of the suite as run: tolerance, tolerances {key: pp}, alpha."""
    section = (run.manifest.get("suite") or {}).get("gate") if isinstance(run.manifest.get("suite"), dict) else None
    if not section:
        return None, {}, None
    where = run.path / "manifest.json"
    if not isinstance(section, dict):
        raise ResultsError(where, "suite.gate must be a mapping")
    try:
        default = (
            _non_negative(section["tolerance"], "suite.gate.tolerance")
            if section.get("tolerance") is not None
            else None
        )
        by_key = {
            str(k): _non_negative(v, f"suite.gate.tolerances.{k}") for k, v in (section.get("tolerances") or {}).items()
        }
        alpha = _alpha(section["alpha"], "suite.gate.alpha") if section.get("alpha") is not None else None
    except (ValueError, AttributeError) as exc:
        raise ResultsError(where, str(exc)) from None
    return default, by_key, alpha


def _alpha(value, where: str = "--alpha") -> float:
    try:
        a = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number in (0, 1), found {value!r}") from None
    if not 0 < a < 1:
        raise ValueError(f"{where}: expected a number in (0, 1), found {value!r}")
    return a


def settings(run: Run, tolerance_args: list[str] | None, alpha: float | None) -> tuple[Tolerances, float]:
    """Command line over the suite's `gate:` section over the defaults."""
    cli_default, cli_keys = parse_tolerances(tolerance_args)
    suite_default, suite_keys, suite_alpha = suite_gate_settings(run)
    tol = Tolerances(
        default=cli_default
        if cli_default is not None
        else suite_default
        if suite_default is not None
        else DEFAULT_TOLERANCE_PP,
        by_key={**suite_keys, **cli_keys},
    )
    a = _alpha(alpha) if alpha is not None else suite_alpha if suite_alpha is not None else DEFAULT_ALPHA
    return tol, a
