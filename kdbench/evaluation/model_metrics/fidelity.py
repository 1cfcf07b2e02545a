"""Fidelity (Stanton et al., 2021): does the student match its teacher, on and off the clean data?

The teacher's probabilities come as log-probabilities (an ensemble already combined, at the
temperature the metric is asked at)."""

from __future__ import annotations

from kdbench.evaluation.model_metrics import register_metric
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")


@register_metric("agreement", "fidelity", lower_is_better=False, per_example=True)
def agreement(logits, labels, teacher, temperature: float = 1.0):
    """Top-1 agreement: the share of examples where student and teacher predict the same class
    (the temperature does not move an argmax)."""
    return (logits.argmax(1) == teacher.argmax(1)).double()


@register_metric("kl_teacher", "fidelity", lower_is_better=True, tempered=True, per_example=True)
def kl_teacher(logits, labels, teacher, temperature: float = 1.0):
    """KL(p_teacher || p_student) at the temperature (both softened by it), summed over classes,
    mean over examples (nats)."""
    log_q = F.log_softmax(logits.double() / temperature, dim=1)
    return F.kl_div(log_q, teacher.double(), reduction="none", log_target=True).sum(1)
