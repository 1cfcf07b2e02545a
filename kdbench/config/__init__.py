"""The suite: its schema (pydantic, the one source of truth for suite files), loading and `--set` overrides.

fields.py     the strict base model, seeds, names checked against a registry
dataset.py    `dataset:`
recipe.py     `train:` (and per-model overrides), torch's schedulers by name
models.py     `teachers:` and `students:`
evaluate.py   `evaluate:` (one key per registered condition) and `gate:`
suite.py      the whole suite: cross-section checks, compare pairs, partners, transfer sources
errors.py     SuiteError and how pydantic's errors are worded for users
overrides.py  `--set key.path=value`
load.py       load_suite: bounded YAML, overrides, validation, checkpoint paths
"""

from kdbench.config.dataset import DatasetSpec
from kdbench.config.errors import SuiteError
from kdbench.config.evaluate import EvaluateSpec, GateSpec, conditions_of
from kdbench.config.load import json_schema, load_suite
from kdbench.config.models import StudentSpec, TeacherSpec
from kdbench.config.recipe import TORCH_SCHEDULERS, TorchSchedule, TrainRecipe, resolve_recipe
from kdbench.config.suite import ComparePair, Suite, transfer_source

__all__ = [
    "ComparePair",
    "DatasetSpec",
    "EvaluateSpec",
    "GateSpec",
    "StudentSpec",
    "Suite",
    "SuiteError",
    "TORCH_SCHEDULERS",
    "TeacherSpec",
    "TorchSchedule",
    "TrainRecipe",
    "conditions_of",
    "json_schema",
    "load_suite",
    "resolve_recipe",
    "transfer_source",
]
