"""Calibration (Guo et al., 2017): does the model's confidence match how often it is right?"""

from __future__ import annotations

from kdbench.evaluation.model_metrics import register_metric
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")

ECE_BINS = 15


@register_metric("nll", "calibration", lower_is_better=True, per_example=True)
def nll(logits, labels):
    """Negative log-likelihood of the true class, mean over examples (nats)."""
    return F.cross_entropy(logits.double(), labels, reduction="none")


@register_metric("brier", "calibration", lower_is_better=True, per_example=True)
def brier(logits, labels):
    """Brier score: sum over classes of (p_c - 1[c = y])^2, mean over examples (0 to 2)."""
    p = torch.softmax(logits.double(), dim=1)
    onehot = F.one_hot(labels, p.shape[1]).double()
    return ((p - onehot) ** 2).sum(1)


@register_metric("confidence", "calibration", lower_is_better=None, per_example=True)
def confidence(logits, labels):
    """Mean top-1 probability (above accuracy: overconfident); per example, the reliability diagram's x."""
    return torch.softmax(logits.double(), dim=1).max(1).values


def reliability_bins(conf, right, bins: int = ECE_BINS):
    """(mean confidence, accuracy, count) per non-empty equal-width bin (k/bins, (k+1)/bins] of the
    confidence: the ECE's terms, and the reliability diagram's points."""
    conf, right = torch.as_tensor(conf, dtype=torch.float64), torch.as_tensor(right, dtype=torch.float64)
    index = torch.clamp(torch.ceil(conf * bins).long() - 1, 0, bins - 1)
    out = [
        (conf[index == b].mean(), right[index == b].mean(), int((index == b).sum()))
        for b in range(bins)
        if (index == b).any()
    ]
    if not out:
        return (
            torch.zeros(0, dtype=torch.float64),
            torch.zeros(0, dtype=torch.float64),
            torch.zeros(0, dtype=torch.long),
        )
    c, a, n = zip(*out)
    return torch.stack(c), torch.stack(a), torch.tensor(n)


@register_metric("ece", "calibration", lower_is_better=True)
def ece(logits, labels) -> float:
    """Expected calibration error: 15 equal-width confidence bins (k/15, (k+1)/15] of the top-1
    probability, sum over bins of |bin| / N * |accuracy - mean confidence| (Guo et al., 2017)."""
    conf, pred = torch.softmax(logits.double(), dim=1).max(1)
    mean_conf, accuracy, count = reliability_bins(conf, pred == labels)
    return float((count / len(conf) * (accuracy - mean_conf).abs()).sum())
