"""Upper bounds on the budgets a suite sets (attack iterations, epochs, batches, queries), each
with its reason: a value past them validates as a number but would run for days or never fit."""

from __future__ import annotations

from pydantic import AfterValidator


def at_most(limit: int, reason: str) -> AfterValidator:
    def check(value):
        if value is not None and value > limit:
            raise ValueError(f"at most {limit:,}: {reason} (found: {value:,})")
        return value

    return AfterValidator(check)


STEPS = at_most(10_000, "an attack's iterations (APGD uses 100, PGD-1000 is already rare); more would run for days")
RESTARTS = at_most(100, "restarts multiply an attack's cost")
QUERIES = at_most(100_000, "Square's queries per example (AutoAttack uses 5,000)")
EPOCHS = at_most(10_000, "training epochs (CIFAR recipes use 200 to 240)")
BATCH = at_most(65_536, "examples per batch; larger batches do not fit an accelerator's memory at 32x32")
EXAMPLES = at_most(10_000_000, "examples")
