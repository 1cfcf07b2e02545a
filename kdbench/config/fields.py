"""Building blocks of the suite schema: the strict base model, seeds, registry-checked names."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from kdbench.registry import UnknownName
from kdbench.util.strict import STRICT

# Seeds reach numpy and torch generators, which take at most 64 bits; the plan hashes them anyway.
Seed = Annotated[
    int, Field(strict=True, ge=0, lt=2**63, description="0 <= seed < 2**63, an integer (not a boolean or a string)")
]

# torch.compile of the training step (recipe) or the attack steps (evaluate); false: eager
Compile = Annotated[
    Literal[False, "default", "reduce-overhead"],
    Field(
        description="torch.compile on a GPU: default, or reduce-overhead (CUDA graphs); eager on the CPU or where "
        "compiling fails (one line says so). In a job's hash unless false: compiled kernels round differently"
    ),
]


class Strict(BaseModel):
    model_config = STRICT


def registered_in(registry_getter):
    """A validator: the name must be in the registry (whose error says what was meant)."""

    def check(value: str) -> str:
        try:
            registry_getter().check(value)
        except UnknownName as exc:
            raise ValueError(str(exc)) from None
        return value

    return check


def architectures():
    from kdbench.models import MODELS

    return MODELS


def datasets():
    from kdbench.data import DATASETS

    return DATASETS
