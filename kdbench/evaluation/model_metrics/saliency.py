"""Saliency agreement: does the student look at the same evidence as its teacher (or its twin)?

Saliency here is the input gradient of the true-class logit, d z_y / d x, on the first
`evaluate.saliency` evaluated examples (clean), which the evaluation keeps per model. Two models
agree on an example as much as their gradients point the same way: the cosine of the two
flattened gradients, from -1 to 1 (an example where either gradient is zero counts 0)."""

from __future__ import annotations

from kdbench.evaluation.model_metrics import register_metric
from kdbench.util.lazy import lazy

torch = lazy("torch")


def cosine(a, b):
    """Per-example cosine similarity of two stacks of gradients (n, ...) -> (n,), float64."""
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > 0, (a * b).sum(1) / norms.clamp_min(1e-300), torch.zeros_like(norms))


@register_metric("saliency_teacher", "saliency", lower_is_better=False, per_example=True)
def saliency_teacher(student_grads, teacher_grads):
    """Cosine of the student's and the teacher's input gradients (true-class logit), mean over the
    saliency examples; an ensemble: the mean of the cosines with each teacher."""
    return torch.stack([cosine(student_grads, t) for t in teacher_grads]).mean(0)


@register_metric("saliency_twin", "saliency", lower_is_better=False, per_example=True)
def saliency_twin(student_grads, twin_grads):
    """Cosine of a student's input gradients with those of the student it is compared with (its
    twin), same seed, mean over the saliency examples."""
    return cosine(student_grads, twin_grads)
