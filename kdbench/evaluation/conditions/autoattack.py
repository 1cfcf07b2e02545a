from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams
from kdbench.util.budgets import BATCH

AutoAttackName = Literal["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]


class AutoAttackParams(AttackParams):
    version: Literal["standard", "rand", "custom"] = Field(
        "standard", description="standard: APGD-CE, APGD-T, FAB-T, Square (RobustBench's protocol)"
    )
    attacks: Optional[list[AutoAttackName]] = Field(
        None, description="version custom only: which of AutoAttack's attacks to run, in order"
    )
    batch_size: Annotated[Optional[int], BATCH] = Field(
        None, ge=1, description="AutoAttack's own batch size (default: evaluate.batch_size)"
    )

    @model_validator(mode="after")
    def _attacks_only_for_custom(self):
        if self.version == "custom" and not self.attacks:
            raise ValueError("version custom needs 'attacks', e.g. [apgd-ce, apgd-t]")
        if self.version != "custom" and self.attacks is not None:
            raise ValueError(f"'attacks' is for version custom; version {self.version} fixes its own")
        return self


@register_condition("autoattack")
class AutoAttackCondition(Attack):
    """AutoAttack (Croce & Hein, 2020): the reference implementation, pyautoattack.AutoAttack.

    Its published budget, Linf or L2, run once on all evaluated examples per model with the
    evaluation seed."""

    kind = "composite"
    whole_set = True
    batch_independent = False  # it batches internally, seeding each batch
    Params = AutoAttackParams
    batch_size: int = 256  # set by the evaluator from evaluate.batch_size

    # (forwards, gradient passes) per example at AutoAttack's published budget, at most: each
    # attack runs only on the examples the earlier ones left robust
    BUDGET: ClassVar[dict] = {
        "apgd-ce": (0, 100),
        "apgd-dlr": (0, 100),
        "apgd-t": (0, 900),
        "fab": (0, 100),
        "fab-t": (0, 900),
        "square": (5000, 0),
    }
    VERSIONS: ClassVar[dict] = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "rand": ("apgd-ce", "apgd-dlr")}

    def passes(self, level):
        p = self.params
        names = p.attacks if p.version == "custom" else self.VERSIONS[p.version]
        eot = 20 if p.version == "rand" else 1  # the rand version averages 20 gradients per step
        return 1 + sum(self.BUDGET[n][0] for n in names), eot * sum(self.BUDGET[n][1] for n in names)

    def make(self, model, eps: float, device):
        from pyautoattack import AutoAttack

        p = self.params
        aa = AutoAttack(
            model,
            norm=p.norm,
            eps=eps,
            version=p.version,
            attacks=p.attacks if p.version == "custom" else None,
            seed=self.seed,
            device=device,
        )
        aa.verbose = False
        return aa

    def attack(self, model, x, y, indices, level, source=None):
        aa = self.make(model, float(level), x.device)
        # its own sanity checks (randomness, output range) still warn through the 'auto-attack' logger
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=self.params.batch_size or self.batch_size)
        return x_adv
