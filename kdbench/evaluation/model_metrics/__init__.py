"""Per-model metrics beyond accuracy, from the logits the evaluation keeps for every
model-independent condition (clean, noise, corruptions: every model saw the same inputs).

    calibration.py  nll, brier, ece: how well the model's confidence matches its accuracy
    fidelity.py     agreement, kl_teacher: how closely a student follows its teacher
    saliency.py     saliency_teacher, saliency_twin: whether its input gradients point the same way
    transfer.py     transfer_rate: whether the teacher's adversarial examples also fool the student

Each metric is a registered function: calibration `(logits (N, C), labels (N,))`, fidelity
`(logits, labels, teacher log-probabilities (N, C), temperature)` (skipped without a teacher).
Most are means over examples: those return the per-example values (N,), which the statistics
need (a method-level test on NLL is a test on per-example NLLs, like accuracy's on per-example
correctness); the rest (ECE, a function of bins) return a float. The runner writes one row per
model, seed, condition, level and metric to model_metrics.csv, and the per-example values to
model_metrics.npz.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kdbench.registry import Registry, summary
from kdbench.util.lazy import lazy

torch = lazy("torch")


@dataclass(frozen=True)
class ModelMetric:
    name: str
    kind: str  # "calibration", "fidelity" (the teacher's probabilities), "saliency" (input gradients), "transfer"
    lower_is_better: bool | None  # None: descriptive (mean confidence)
    fn: Callable
    tempered: bool = False  # also reported at the distillation temperature (KL)
    per_example: bool = False  # fn returns (N,) values whose mean is the metric

    @property
    def __wrapped__(self):  # where it was defined, for the registry
        return self.fn

    def values(self, *args, **kw):
        """(the metric, its per-example values (N,) float32 numpy or None). What a plugin's metric
        returns is checked: one number, or a tensor of one value per example."""
        from kdbench.util.contracts import located
        from kdbench.util.errors import CodeFailed

        what = f"model metric '{self.name}'"
        out = self.fn(*args, **kw)  # an exception in a plugin's metric is said by the run (assemble)
        if not self.per_example:
            try:
                return float(out), None
            except (TypeError, ValueError, RuntimeError):
                raise CodeFailed(
                    f"{what} ({located(self.fn)}) returned {type(out).__name__}, expected one number"
                ) from None
        n = len(args[0])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n,):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CodeFailed(
                f"{what} ({located(self.fn)}) returned {shape}, expected per-example values of shape ({n},)"
            )
        out = out.detach().double()
        return float(torch.nanmean(out)), out.float().cpu().numpy()  # NaN: an example the metric does not cover

    @property
    def doc(self) -> str:
        return summary(self.fn.__doc__)


MODEL_METRICS: Registry[ModelMetric] = Registry("model metric")


def register_metric(
    name: str, kind: str, lower_is_better: bool | None, tempered: bool = False, per_example: bool = False
):
    """Register `fn` as model metric `name`: kind "calibration" takes (logits (N, C), labels (N,)),
    "fidelity" (logits, labels, the teacher's log-probabilities (N, C), temperature); it returns
    per-example values (N,) with `per_example`, else one float. `lower_is_better` is None for a
    descriptive metric; `tempered` also reports it at the distillation temperature."""

    def deco(fn):
        MODEL_METRICS.register(name)(ModelMetric(name, kind, lower_is_better, fn, tempered, per_example))
        return fn

    return deco


MODEL_METRICS.declare_from_sources(
    __name__, __path__, "register_metric", first=["calibration", "fidelity", "saliency", "transfer"], keywords=False
)

__all__ = ["MODEL_METRICS", "ModelMetric", "register_metric"]
