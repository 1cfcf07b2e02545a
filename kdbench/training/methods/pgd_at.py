from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.evaluation.conditions.pgd import cross_entropy
from kdbench.training.methods import register_method
from kdbench.training.methods.base import Method, MethodParams
from kdbench.training.methods.inner_attack import InnerAttack, perturb
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")


class PGDATParams(MethodParams):
    name: Literal["pgd_at"] = "pgd_at"
    attack: InnerAttack = Field(
        default_factory=InnerAttack, description="the inner attack: {eps, step_size, steps, start, mode}"
    )


@register_method("pgd_at")
class PGDAT(Method):
    """Adversarial training (Madry et al., 2018):  CE(z_s(x_adv), y),  x_adv = PGD on CE(z_s(x'), y).

    Trains on adversarial examples only; training accuracy is counted on them. The hard-label twin
    of the robust distillation methods, and a way to train a robust teacher inside a suite."""

    role = "baseline"
    Params = PGDATParams

    def forward_train(self, student, teachers, batch):
        x_adv = perturb(student, batch.x, batch.y, cross_entropy, self.params.attack, batch)
        logits = student(x_adv)
        return logits, {"ce_adv": F.cross_entropy(logits, batch.y)}
