"""What an evaluation condition is: a named family of perturbations at a list of levels.

A model-independent condition (clean, noise, corruptions) turns a clean batch into a perturbed
one with `perturb`; the evaluator makes each perturbed batch once and scores every model on it.
A model-dependent one (an attack) overrides `attack` and is run per model.

Inputs and outputs are float tensors (B, 3, H, W) in [0, 1] on the run's device; `indices` are
the images' positions in the dataset's test split, for per-image seeding and released files.
"""

from __future__ import annotations

from typing import ClassVar, Optional

from pydantic import BaseModel, Field

from kdbench.util.lazy import lazy
from kdbench.util.strict import STRICT

torch = lazy("torch")


class Params(BaseModel):
    """A condition's parameters, as a suite writes them under `evaluate:`; unknown keys refused."""

    model_config = STRICT

    n: Optional[int] = Field(
        None,
        ge=1,
        description="score this condition on the first n evaluated examples, a seeded, class-stratified subset "
        "(the evaluation order begins with it); all when absent",
    )


class Condition:
    """An evaluation condition: `perturb` (model-independent: made once per batch, scored on every
    model) or `attack` (per model), at each of its `levels()`. Register a subclass with
    `@register_condition("name")`; its `group` (clean, noise, attack or corruption) is the report's."""

    name: ClassVar[str]
    group: ClassVar[str]  # clean | noise | attack | corruption: the gate's condition groups
    model_dependent: ClassVar[bool] = False
    Params: ClassVar[type[Params]] = Params
    # the suite's dataset, set by the JobRunner: a condition that reads released files of it (the
    # corruptions' CIFAR-10-C or CIFAR-100-C) picks them by this name
    dataset: str = "cifar10"

    def __init__(self, params: Params, seed: int = 0):
        self.params = params
        self.seed = seed

    @classmethod
    def build(cls, params: Params, seed: int) -> list["Condition"]:
        """One YAML entry may stand for several conditions (the corruptions entry does)."""
        return [cls(params, seed)]

    def limit(self, n: int) -> int:
        """How many of the `n` evaluated examples (a prefix of the evaluation order) it scores."""
        return n if self.params.n is None else min(self.params.n, n)

    def levels(self) -> list:
        """Level values as metrics.csv records them: [None] for no levels, else sigmas/epsilons/severities."""
        return [None]

    def passes(self, level) -> tuple[int, int]:
        """(forward passes, gradient passes) per evaluated batch at `level`, for the dry run's time
        estimate: a perturbed batch is scored once."""
        return 1, 0

    def perturb(self, x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, level) -> torch.Tensor:
        raise NotImplementedError

    def attack(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        indices: torch.Tensor,
        level,
        source: Optional[torch.nn.Module] = None,
    ) -> torch.Tensor:
        """The adversarial batch for `model`; `source` is the model a transfer attack crafts on
        (None for the others, which ignore it)."""
        raise NotImplementedError
