"""`import kdbench`: the notebook API does what the command line does."""

from pathlib import Path

import pytest
import torch

import kdbench

SUITE = Path(__file__).parent / "suites" / "synthetic.yaml"
SMALL = [
    "train.epochs=1",
    "dataset.params.n_train=200",
    "evaluate.n=40",
    "evaluate.corruptions={names: [gaussian_noise, fog], severities: [1, 3], reference_model: base}",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    suite = kdbench.load_suite(SUITE, overrides=SMALL)
    lines = []
    out = kdbench.run(suite, out=tmp_path_factory.mktemp("api"), device="cpu", log=lines.append)
    assert any("running" in line for line in lines)
    return out


def test_the_api_is_small_and_documented():
    assert kdbench.__all__ == [
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
    for name in kdbench.__all__[1:]:
        assert getattr(kdbench, name).__doc__, name


def test_a_bad_suite_raises_the_command_lines_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SUITE.read_text().replace("epochs: 4", "epochs: 0"))
    with pytest.raises(kdbench.SuiteError, match=r"bad.yaml: train.epochs: expected greater than or equal to 1"):
        kdbench.load_suite(bad)


def test_run_read_verdicts_report_compare_gate(run_dir, tmp_path):
    run = kdbench.read_run(run_dir)
    assert set(run.metrics["model"]) == {"teacher", "base", "kd"}
    # the noise sweep and the corruption of the same name are told apart by their condition alone
    m = run.metrics
    assert set(m.loc[m["condition"] == "gaussian_noise", "group"]) == {"noise"}
    assert set(m.loc[m["group"] == "corruption", "condition"]) == {"c:gaussian_noise", "c:fog"}
    assert run.manifest["results_format"] == 3 and set(run.summary["corruption"]) >= {"gaussian_noise", "fog", "all"}
    (sentence,) = kdbench.verdicts(run_dir)
    assert sentence.startswith("kd vs base (cnn_tiny, 1 seed): ")
    html = kdbench.report(run_dir, tmp_path / "r.html")
    assert html == tmp_path / "r.html" and "At a glance" in html.read_text()
    (tex,) = kdbench.export(run_dir, "latex", tmp_path / "t.tex")
    assert tex.read_text().count("kd vs base") == 1
    table = kdbench.compare(run_dir, run_dir)
    assert (table["diff"] == 0).all() and len(table) == len(run.metrics)
    result = kdbench.gate(run_dir, run_dir)
    assert result.exit_code in (0, 4) and "kdbench gate" in result.markdown


@pytest.mark.parametrize(
    "kwargs, expected", [({"jobs": 0}, "jobs=0: expected"), ({"threads": 0}, "threads=0: expected")]
)
def test_run_refuses_no_jobs_or_threads_clearly(tmp_path, kwargs, expected):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ndataset: {name: synthetic, params: {n_train: 64, n_test: 32}}\n"
        "students:\n  s: {arch: cnn_tiny, method: baseline}\n"
    )
    from kdbench.util.errors import UserError

    with pytest.raises(UserError, match=expected):
        kdbench.run(suite, out=tmp_path / "out", device="cpu", **kwargs)
