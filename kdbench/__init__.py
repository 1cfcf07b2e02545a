"""kdbench: does knowledge distillation make students more robust than their hard-label twins?

The public Python API (kdbench.api): load a suite, run it, read, report and export the run,
query the index of runs, compare two runs, gate one against a baseline. And what a plugin needs: the decorators that
register an architecture, a method, a condition, a dataset or a model metric (the same ones
kdbench's own use), and the base classes of methods and conditions.
"""

from kdbench.api import (
    Suite,
    SuiteError,
    compare,
    export,
    gate,
    load_suite,
    read_run,
    report,
    run,
    runs,
    verdicts,
)
from kdbench.data import register_dataset
from kdbench.evaluation.conditions import Condition, register_condition
from kdbench.evaluation.conditions.base import Params as ConditionParams
from kdbench.evaluation.model_metrics import register_metric
from kdbench.models import register_model
from kdbench.training.methods import Method, MethodParams, register_method, teacher_log_probs
from kdbench.training.methods.base import Batch, FeatureMethod, PretrainParams, TeacherMethod, Teachers
from kdbench.version import __version__

__all__ = [
    "__version__",
    "Suite",
    "SuiteError",
    "load_suite",
    "run",
    "read_run",
    "runs",
    "compare",
    "verdicts",
    "report",
    "export",
    "gate",
    # plugins
    "register_model",
    "register_method",
    "register_condition",
    "register_dataset",
    "register_metric",
    "Method",
    "TeacherMethod",
    "MethodParams",
    "PretrainParams",
    "FeatureMethod",
    "features",
    "Features",
    "Batch",
    "Teachers",
    "Condition",
    "ConditionParams",
    "teacher_log_probs",
]


def __getattr__(name: str):
    # the feature API imports torch: loaded when first asked for, so `import kdbench` stays light
    if name in ("features", "Features"):
        from kdbench.models import features as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
