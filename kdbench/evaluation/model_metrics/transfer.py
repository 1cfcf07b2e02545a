"""Transferability (Ojha et al., 2023: does a teacher's adversarial weakness pass to its student?).

Read from the `transfer` attack, which crafts adversarial examples on a source model (by default
the distilled student's teacher, for both twins) and scores them on the student: of the examples
that fool the source, the share that also fool the student."""

from __future__ import annotations

from kdbench.evaluation.model_metrics import register_metric
from kdbench.util.lazy import lazy

torch = lazy("torch")


@register_metric("transfer_rate", "transfer", lower_is_better=True, per_example=True)
def transfer_rate(student_correct, source_correct):
    """Of the source's adversarial examples that fool the source, the share that also fool this
    model (wrong on it, or already wrong on the clean image: RobustBench's convention); per example
    1 or 0 there, NaN where the source resisted its own example."""
    fooled = ~source_correct.bool()
    return torch.where(
        fooled, (~student_correct.bool()).double(), torch.full(fooled.shape, float("nan"), dtype=torch.float64)
    )
