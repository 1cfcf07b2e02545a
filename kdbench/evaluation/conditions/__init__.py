"""Evaluation conditions, found by the names the suite uses (`clean`, `gaussian_noise`, `fgsm`, ...).

A new condition is one new module whose class registers itself with `@register_condition("name")`.
"""

from kdbench.evaluation.conditions.base import Condition, Params
from kdbench.registry import Registry

CONDITIONS: Registry[type[Condition]] = Registry("condition")
register_condition = CONDITIONS.register

# The order is the suite schema's, the conditions' in metrics.csv and the evaluation specification's,
# which enters every evaluation job's hash: a new condition goes last.
CONDITIONS.declare_from_sources(
    __name__,
    __path__,
    "register_condition",
    first=[
        "clean",
        "gaussian_noise",
        "fgsm",
        "pgd",
        "cw",
        "apgd",
        "apgd_t",
        "square",
        "autoattack",
        "transfer",
        "robust",
        "corruptions.condition",
    ],
)

__all__ = ["CONDITIONS", "Condition", "Params", "register_condition"]
