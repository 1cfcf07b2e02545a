"""The training recipe (`train:`), per-model overrides of it, and torch's schedulers by name."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import BaseModel, Discriminator, Field, Tag, create_model, field_validator, model_validator

from kdbench.config.fields import Compile, Strict
from kdbench.util.budgets import BATCH, EPOCHS

# torch.optim.lr_scheduler classes a recipe may name: those that need only numbers (LambdaLR wants a
# function, SequentialLR other schedulers, ReduceLROnPlateau a metric). Stepped once per
# optimisation step or once per epoch, as torch documents for each.
TORCH_SCHEDULERS = {
    "OneCycleLR": "step",
    "CyclicLR": "step",
    "StepLR": "epoch",
    "MultiStepLR": "epoch",
    "ExponentialLR": "epoch",
    "CosineAnnealingLR": "epoch",
    "CosineAnnealingWarmRestarts": "epoch",
    "PolynomialLR": "epoch",
    "LinearLR": "epoch",
    "ConstantLR": "epoch",
}


# Scheduler arguments that are lengths, periods or factors, meaningless at zero or below.
_POSITIVE = {"step_size", "gamma", "T_max", "T_0", "T_mult", "total_iters", "total_steps", "step_size_up"}
_POSITIVE |= {"step_size_down", "epochs", "steps_per_epoch", "max_lr", "div_factor", "final_div_factor"}


class TorchSchedule(Strict):
    """A learning-rate scheduler of torch.optim.lr_scheduler by class name, with its arguments, as
    torchdistill takes them: `{name: OneCycleLR, args: {max_lr: 0.1}}`. OneCycleLR and CyclicLR
    step per optimisation step, the others per epoch (`interval` overrides); OneCycleLR's
    `total_steps` defaults to the recipe's length."""

    name: Literal[tuple(TORCH_SCHEDULERS)] = Field(description="a class of torch.optim.lr_scheduler")
    args: dict[str, Any] = Field(default_factory=dict, description="its keyword arguments, except the optimizer")
    interval: Literal["step", "epoch"] | None = Field(
        None, description="when it steps (default: as torch documents for it)"
    )

    @property
    def every(self) -> str:
        return self.interval or TORCH_SCHEDULERS[self.name]

    def build(self, optimizer, epochs: int, steps_per_epoch: int):
        import torch

        args = dict(self.args)
        if self.name == "OneCycleLR" and not {"total_steps", "epochs", "steps_per_epoch"} & set(args):
            args["total_steps"] = epochs * steps_per_epoch if self.every == "step" else epochs
        return getattr(torch.optim.lr_scheduler, self.name)(optimizer, **args)

    @model_validator(mode="after")
    def _constructs(self):
        import torch

        if "optimizer" in self.args:
            raise ValueError("args: the optimizer is the recipe's; leave 'optimizer' out")
        bad = [k for k, v in self.args.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ValueError(f"args: {', '.join(bad)} must be a finite number")
        for key, value in self.args.items():
            # torch takes these without complaint and then runs a meaningless schedule (StepLR with
            # step_size -3 raises the learning rate each epoch)
            if key in _POSITIVE and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
                raise ValueError(f"args.{key}: expected a number > 0, got {value!r}")
            if key == "milestones" and not (
                isinstance(value, list)
                and all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in value)
                and value == sorted(set(value))
            ):
                raise ValueError(f"args.milestones: expected increasing whole numbers > 0, got {value!r}")
            if key == "last_epoch":
                raise ValueError("args: last_epoch resumes a schedule mid-way; leave it out (runs resume by job)")
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        try:
            self.build(opt, 10, 10)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"torch.optim.lr_scheduler.{self.name}({', '.join(f'{k}={v!r}' for k, v in self.args.items())}): {exc}"
            ) from None
        return self


class TrainRecipe(Strict):
    epochs: Annotated[int, EPOCHS] = Field(200, ge=1)
    batch_size: Annotated[int, BATCH] = Field(128, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Annotated[
        Annotated[Literal["constant", "cosine", "multistep"], Tag("named")] | Annotated[TorchSchedule, Tag("torch")],
        Discriminator(lambda v: "named" if isinstance(v, str) else "torch"),  # errors name the one form meant
    ] = Field(
        "cosine",
        description="constant, cosine or multistep (with warmup_epochs), or a torch scheduler {name, args, interval}",
    )
    milestones: list[float] = Field([0.5, 0.75], description="multistep: fractions of the epochs where lr *= gamma")
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: int = Field(0, ge=0)
    augment: bool = Field(True, description="random crop (padding 4) and horizontal flip")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: the forward pass and losses under bf16 autocast (weights and updates stay fp32)"
    )
    compile: Compile = False
    channels_last: bool = Field(
        False,
        description="conv nets laid out channels-last on the CPU too (on a GPU they always are): a small CNN's "
        "training step is 1.3 to 2.3 times faster on a CPU; the CPU then rounds differently, so it enters the job hash",
    )

    # fields added after results existed: left out of a job's hash at their defaults, so that
    # existing jobs keep their hashes
    LATER_FIELDS: ClassVar[dict] = {"precision": "fp32", "compile": False, "channels_last": False}

    def hash_spec(self) -> dict:
        """The recipe as it enters a job's hash."""
        spec = self.model_dump(mode="json")
        return {k: v for k, v in spec.items() if not (k in self.LATER_FIELDS and v == self.LATER_FIELDS[k])}

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, v):
        bad = [m for m in v if not 0 <= m <= 1]
        if bad:
            raise ValueError(f"milestones are fractions of the epochs, in [0, 1] (found: {bad})")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"milestones must increase, each a later fraction of the epochs (found: {v})")
        return v

    @model_validator(mode="after")
    def _warmup_fits(self):
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) is longer than epochs ({self.epochs})")
        if self.warmup_epochs and isinstance(self.schedule, TorchSchedule):
            raise ValueError(
                f"warmup_epochs is for the named schedules; {self.schedule.name} warms up by itself (OneCycleLR's "
                "pct_start, or LinearLR)"
            )
        return self

    @model_validator(mode="after")
    def _schedule_runs(self):
        """A torch scheduler is stepped through the recipe once (with the recipe's optimizer, two
        steps an epoch), so that what fails only when stepped (StepLR's step_size 0, CyclicLR's
        momentum under Adam, a learning rate that turns NaN) fails here, not hours into a run."""
        if not isinstance(self.schedule, TorchSchedule):
            return self
        import torch

        from kdbench.training.loop import make_optimizer

        opt = make_optimizer([torch.zeros(1, requires_grad=True)], self)
        s = self.schedule
        call = f"torch.optim.lr_scheduler.{s.name}({', '.join(f'{k}={v!r}' for k, v in s.args.items())})"
        try:
            sched = s.build(opt, self.epochs, 2)
            for _ in range(min(2000, self.epochs * (2 if s.every == "step" else 1))):
                opt.step()
                sched.step()
                if not all(math.isfinite(lr) and lr >= 0 for lr in sched.get_last_lr()):
                    raise ValueError(f"the learning rate became {sched.get_last_lr()[0]}")
        except Exception as exc:  # noqa: BLE001 - whatever torch raises, said with the call that raised it
            raise ValueError(f"{call} with {self.optimizer}: {type(exc).__name__}: {exc}") from None
        return self


# Per-model overrides: the same keys with the same limits, all optional; the merged recipe is
# checked again as a whole (suite validation), so cross-field rules hold for overrides too.
TrainOverride = create_model(
    "TrainOverride",
    __base__=Strict,
    **{
        k: (Optional[Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation], None)
        for k, f in TrainRecipe.model_fields.items()
    },
)


def resolve_recipe(base: TrainRecipe, override: Optional[BaseModel]) -> TrainRecipe:
    if override is None:
        return base
    return TrainRecipe.model_validate({**base.model_dump(), **override.model_dump(exclude_none=True)})
