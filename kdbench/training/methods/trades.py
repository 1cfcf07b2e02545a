from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import Method, MethodParams, kl_divergence
from kdbench.training.methods.inner_attack import KLInnerAttack, perturb
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")


class TRADESParams(MethodParams):
    name: Literal["trades"] = "trades"
    beta: float = Field(6.0, ge=0, description="weight of the robust (KL) term; 1/lambda in the paper")
    attack: KLInnerAttack = Field(
        default_factory=KLInnerAttack, description="the inner attack: {eps, step_size, steps, start, mode}"
    )


def kl_from(p_log: torch.Tensor):
    """The per-example KL(p || softmax(z')) as a loss of the attacked logits z'."""

    def loss(logits, _target):
        return F.kl_div(F.log_softmax(logits, dim=1), p_log, reduction="none", log_target=True).sum(1)

    return loss


@register_method("trades")
class TRADES(Method):
    """TRADES (Zhang et al., 2019):  CE(z(x), y) + beta * KL(p(x) || p(x_adv)).

    x_adv = PGD on KL(p(x) || p(x')), p = softmax(z); KL summed over classes, averaged over the batch.

    As in the authors' code, the KL is taken from the clean prediction to the adversarial one,
    gradients flow through both, and the attack's target p(x) is computed in the attack's mode (eval). No teacher:
    a control for the robust distillation methods (a better adversarial loss, no teacher), held
    against pgd_at."""

    twin = "pgd_at"
    Params = TRADESParams

    def forward_train(self, student, teachers, batch):
        p = self.params
        was_training = student.training
        student.train(p.attack.mode == "train")  # the target in the mode the attack runs in
        with torch.no_grad():
            clean_log_p = F.log_softmax(student(batch.x), dim=1)
        student.train(was_training)
        x_adv = perturb(student, batch.x, batch.y, kl_from(clean_log_p), p.attack, batch)
        logits = student(batch.x)
        robust = kl_divergence(F.log_softmax(logits, dim=1), F.log_softmax(student(x_adv), dim=1))
        return logits, {"ce": F.cross_entropy(logits, batch.y), "kl_robust": p.beta * robust}
