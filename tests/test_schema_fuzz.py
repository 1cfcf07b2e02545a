"""A seeded fuzz of the whole suite schema: every field of every registered parameters model
(methods, their inner attacks, conditions, diagnostics, the recipe, a plugin's method) set to
boundary, non-finite, huge and wrong-type values. `validate` must answer 0 or 2 with no
traceback; a sample of what it accepts must run (tiny synthetic data) to 0, 1 or 2, no
traceback, no hang."""

import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from kdbench.cli import main

pytestmark = pytest.mark.usefixtures("fresh_plugins")

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "my-method" / "my_plugin.py"
BASE = {
    "name": "fuzz",
    "plugins": [str(PLUGIN)],
    "dataset": {"name": "synthetic", "params": {"n_train": 60, "n_test": 40, "seed": 0}},
    "train": {"epochs": 1, "batch_size": 20, "lr": 0.05, "augment": False},
    "teachers": {"t": {"arch": "cnn_tiny", "seed": 1}},
    "students": {"base": {"arch": "cnn_tiny", "method": "baseline"}},
    "evaluate": {"n": 20, "batch_size": 20, "saliency": 4, "diagnostics": {"subset": 8, "unbounded_steps": 2}},
}
EPS = ["2/255"]
MINIMAL = {  # the least each condition needs, cheap to run
    "gaussian_noise": {"sigmas": [0.05]},
    "fgsm": {"eps": EPS},
    "pgd": {"eps": EPS, "steps": 2},
    "cw": {"eps": EPS, "steps": 2},
    "apgd": {"eps": EPS, "steps": 2},
    "apgd_t": {"eps": EPS, "steps": 2, "target_classes": 2},
    "square": {"eps": EPS, "queries": 5},
    "autoattack": {"eps": EPS, "version": "custom", "attacks": ["apgd-ce"]},
    "transfer": {"eps": EPS, "steps": 2},
    "robust": {"eps": EPS, "steps": 2},
    "corruptions": {"names": ["fog"], "severities": [1]},
}
WRONG = ["x", [], {}, True, None, "8/0", "0.5/255", float("nan"), float("inf"), -math.inf, 1e300, 2**62, -1, 0]


def dump(doc: dict) -> str:
    # libyaml's emitter where PyYAML has it: the same document, written ten times faster
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True)


def values_for(field) -> list:
    """Boundary values of a field (its bounds and just past them), then everything wrong."""
    out = []
    for m in field.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            bound = getattr(m, attr, None)
            if isinstance(bound, (int, float)):
                step = 1 if isinstance(bound, int) else 1e-9
                out += [bound, bound - step, bound + step]
    return out + WRONG + [[0.05, "nan"], [1e300]]


def nested_model(field):
    ann = field.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def mutants():
    """(label, suite dict) for every field of every parameters model."""
    from kdbench.config import TrainRecipe
    from kdbench.evaluation.conditions import CONDITIONS
    from kdbench.evaluation.diagnostics import DiagnosticsParams
    from kdbench.training.methods import METHODS

    def over(model, place, prefix=""):
        for key, field in model.model_fields.items():
            if key == "name":
                continue
            inner = nested_model(field)
            if inner is not None:
                for sub, sub_field in inner.model_fields.items():
                    for value in values_for(sub_field):
                        yield f"{prefix}{key}.{sub}={value!r:.20}", place({key: {sub: value}})
                for value in WRONG:
                    yield f"{prefix}{key}={value!r:.20}", place({key: value})
                continue
            for value in values_for(field):
                yield f"{prefix}{key}={value!r:.20}", place({key: value})

    def doc(update) -> dict:
        d = json.loads(json.dumps(BASE))
        update(d)
        return d

    for name, cls in METHODS.items():
        needs = {"teachers": ["t"]} if cls.needs_teacher else {}

        def place(v, name=name, needs=needs):
            return doc(
                lambda d: d["students"].__setitem__("s", {"arch": "cnn_tiny", "method": {"name": name, **v}, **needs})
            )

        yield from ((f"method {name}: {label}", d) for label, d in over(cls.Params, place))
    for name, cls in CONDITIONS.items():
        if name == "clean":
            continue

        def place(v, name=name):
            return doc(lambda d: d["evaluate"].__setitem__(name, {**MINIMAL.get(name, {}), **v}))

        yield from ((f"condition {name}: {label}", d) for label, d in over(cls.Params, place))
    yield from (
        (f"diagnostics: {label}", d)
        for label, d in over(DiagnosticsParams, lambda v: doc(lambda d: d["evaluate"]["diagnostics"].update(v)))
    )
    yield from (
        (f"recipe: {label}", d) for label, d in over(TrainRecipe, lambda v: doc(lambda d: d["train"].update(v)))
    )


def test_every_parameter_fuzzed_validates_to_0_or_2_and_a_sample_runs(tmp_path, capsys):
    rng = random.Random(2026)
    start = time.perf_counter()
    codes, accepted, slowest = {0: 0, 2: 0}, [], (0.0, "")
    path = tmp_path / "suite.yaml"
    for label, doc in mutants():
        path.write_text(dump(doc))
        t0 = time.perf_counter()
        code = main(["validate", str(path)])  # an uncaught exception fails the test here
        took = time.perf_counter() - t0
        slowest = max(slowest, (took, label))
        out, err = capsys.readouterr()
        assert code in (0, 2), (label, out, err)
        assert "Traceback" not in err, (label, err)
        if code == 2:
            assert str(path) in err, (label, err)
        else:
            accepted.append((label, doc))
        codes[code] += 1
    tried = sum(codes.values())
    assert tried > 1000 and codes[2] > codes[0] > 100, codes
    validate_s = time.perf_counter() - start
    # what validate accepts, run must not crash on: a seeded sample, each in its own process
    sample = rng.sample(accepted, 2)
    runs = []
    for i, (label, doc) in enumerate(sample):
        suite = tmp_path / f"run{i}.yaml"
        suite.write_text(dump(doc))
        t0 = time.perf_counter()
        command = [sys.executable, "-m", "kdbench", "run", str(suite), "--out", str(tmp_path / f"out{i}")]
        done = subprocess.run(
            command + ["--device", "cpu", "--threads", "1"], capture_output=True, text=True, timeout=180, check=False
        )
        runs.append((label, done.returncode, round(time.perf_counter() - t0, 1)))
        assert done.returncode in (0, 1, 2) and "Traceback" not in done.stderr, (label, done.stderr[-3000:])
    print(
        f"fuzz: {tried} inputs, exits {codes}, validate {validate_s:.1f} s, slowest {slowest[0]:.3f} s ({slowest[1]}); "
        f"runs {runs}"
    )
