"""End to end through the CLI on the synthetic suite: results contract, determinism, resume."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kdbench.cli import main
from kdbench.pipeline import jobs
from kdbench.results.contract import METRIC_COLUMNS
from kdbench.results.read import read_run

SUITE = Path(__file__).parent / "suites" / "synthetic.yaml"


def run_cli(out, *extra):
    code = main(["run", str(SUITE), "--out", str(out), "--device", "cpu", *extra])
    assert code == 0
    return (out / "synthetic" / "latest").resolve()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run1")
    return out, run_cli(out)


def test_run_directory_follows_the_contract(first_run):
    _, run_dir = first_run
    run = read_run(run_dir)
    m = run.metrics
    assert list(m.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    models = {("teacher", 7), ("base", 0), ("kd", 0)}
    assert set(zip(m.model, m.seed)) == models
    assert set(m.role) == {"teacher", "baseline", "distilled"}
    per_model = m[m.model == "base"]
    assert list(zip(per_model.condition, per_model.level)) == [
        ("clean", ""),
        ("gaussian_noise", "0.05"),
        ("gaussian_noise", "0.2"),
        ("fgsm", "0.00784314"),
        ("fgsm", "0.0313725"),
        ("pgd", "0.00784314"),
        ("pgd", "0.0313725"),
        ("worst_case", "0.00784314"),
        ("worst_case", "0.0313725"),
    ]
    assert (m.n == 120).all() and np.allclose(m.accuracy, m.correct / m.n)
    assert run.correct.shape == (len(m), 120)
    # the test examples are a stratified subset of the 200: 12 per class
    assert len(set(run.example_index.tolist())) == 120
    manifest = run.manifest
    for key in (
        "kdbench_version",
        "torch",
        "torchvision",
        "torchattacks",
        "device",
        "device_name",
        "suite",
        "jobs",
        "eval_spec_hash",
        "example_ids_sha256",
        "attack_seconds",
    ):
        assert manifest.get(key) is not None, key
    assert {j["kind"] for j in manifest["jobs"]} == {"teacher", "student", "evaluate"}
    assert all(j["wall_s"] >= 0 for j in manifest["jobs"])
    assert manifest["compare"] == [{"distilled": "kd", "baseline": "base"}]
    agreement = run.agreement
    assert list(agreement.model) == ["kd"] and 0 <= agreement.agreement.iloc[0] <= 1
    assert agreement.agree.iloc[0] == round(agreement.agreement.iloc[0] * 120)


def test_models_learn_and_attacks_hurt(first_run):
    m = read_run(first_run[1]).metrics
    for model in ("teacher", "base", "kd"):
        acc = m[m.model == model].set_index(["condition", "level"]).accuracy
        assert acc["clean", ""] > 0.5, model  # chance is 0.1
        for cond in ("fgsm", "pgd"):
            assert acc[cond, "0.00784314"] >= acc[cond, "0.0313725"], (model, cond)
        assert acc["pgd", "0.0313725"] <= acc["fgsm", "0.0313725"] <= acc["clean", ""], model
        assert acc["gaussian_noise", "0.2"] <= acc["clean", ""]
        for eps in ("0.00784314", "0.0313725"):
            assert acc["worst_case", eps] <= min(acc["fgsm", eps], acc["pgd", eps])


def test_worst_case_is_the_and_of_the_attack_rows(first_run):
    run = read_run(first_run[1])
    m = run.metrics
    for (model, seed), rows in m.groupby(["model", "seed"]):
        clean = run.correct[rows.index[rows.condition == "clean"][0]]
        for eps in ("0.00784314", "0.0313725"):
            attacks = rows.index[(rows.group == "attack") & (rows.level == eps) & (rows.condition != "worst_case")]
            worst = run.correct[rows.index[(rows.condition == "worst_case") & (rows.level == eps)][0]]
            assert len(attacks) == 2 and np.array_equal(worst, run.correct[attacks].all(0))
            assert not (run.correct[attacks] & ~clean).any()  # clean mistakes never count as robust


def test_diagnostics_are_written_and_unflagged_for_plain_models(first_run):
    d = read_run(first_run[1]).diagnostics
    assert d is not None and set(d.model) == {"teacher", "base", "kd"}
    assert {"iterative_vs_single_step", "unbounded", "vanishing_gradient", "more_steps_help"} <= set(d.check)
    assert not d.flagged.any(), d[d.flagged]


def test_job_groups_batch_consecutive_evaluations_up_to_the_size():
    from kdbench.executors.base import job_groups
    from kdbench.pipeline.plan import Job

    jobs = [
        Job(k, m, 0, {})
        for k, m in [
            ("teacher", "t"),
            ("student", "a"),
            ("student", "b"),
            ("evaluate", "t"),
            ("evaluate", "a"),
            ("evaluate", "b"),
            ("student", "c"),
            ("evaluate", "c"),
        ]
    ]
    ids = lambda groups: [[j.model for j in g] for g in groups]  # noqa: E731
    assert ids(job_groups(jobs, 2)) == [["t"], ["a"], ["b"], ["t", "a"], ["b"], ["c"], ["c"]]
    assert ids(job_groups(jobs, 8)) == [["t"], ["a"], ["b"], ["t", "a", "b"], ["c"], ["c"]]  # never across another kind
    assert ids(job_groups(jobs, 1)) == [[j.model] for j in jobs]


def test_evaluation_groups_change_no_number(first_run, tmp_path, capsys):
    # the trainings from the first run, the evaluations made again one model at a time
    import json
    import shutil

    out, run_dir = first_run
    cache = tmp_path / "cache"
    shutil.copytree(out / "_cache", cache)
    for job in (cache / "jobs").iterdir():
        if json.loads((job / "job.json").read_text())["id"].startswith("evaluate:"):
            shutil.rmtree(job)
    capsys.readouterr()
    again = run_cli(tmp_path, "--cache-dir", str(cache), "--eval-group", "1")
    err = capsys.readouterr().err
    assert "3 of 6 jobs already done (cached); 3 to run" in err
    assert err.count("running evaluate:") == 3 and ", evaluate:" not in err  # one model per group
    assert read_run(again).manifest["executor"] == {"name": "local", "eval_group": 1, "jobs": 1}
    for name in ("metrics.csv", "per_example.npz", "model_metrics.csv", "agreement.csv"):
        assert (run_dir / name).read_bytes() == (again / name).read_bytes(), name
    assert main(["run", str(SUITE), "--out", str(tmp_path), "--eval-group", "0"]) == 2
    assert "--eval-group 0: expected a whole number of jobs, 1 or more" in capsys.readouterr().err


def test_second_run_uses_the_cache(first_run, capsys):
    out, run_dir = first_run
    again = run_cli(out)
    err = capsys.readouterr().err
    assert "already done (cached); 0 to run" in err
    assert all(j["cached"] for j in read_run(again).manifest["jobs"])
    pd.testing.assert_frame_equal(read_run(run_dir).metrics, read_run(again).metrics)


def test_interrupted_run_resumes_to_the_same_numbers(first_run, tmp_path, monkeypatch, capsys):
    """Interrupted in its second student, then resumed: nothing half-written kept, the run finishes
    where it stopped, and, every job made afresh in its own store, the first run's numbers and
    networks bit for bit (the same suite, the same numbers)."""
    real = jobs.JobRunner.run_student
    calls = []

    def interrupt_second_student(self, js, outs):
        calls.append(js[0].id)
        if len(calls) == 2:
            (outs[0] / "model.pt").write_bytes(b"half a file")
            raise KeyboardInterrupt
        return real(self, js, outs)

    monkeypatch.setattr(jobs.JobRunner, "run_student", interrupt_second_student)
    assert main(["run", str(SUITE), "--out", str(tmp_path), "--device", "cpu"]) == 130
    assert "next run resumes" in capsys.readouterr().err
    done = [p for p in (tmp_path / "_cache" / "jobs").iterdir()]
    assert all((p / "job.json").is_file() for p in done)  # nothing half-written was kept
    assert not any(p.name.endswith(".part") for p in (tmp_path / "_cache" / "jobs").iterdir())
    assert not (tmp_path / "synthetic").exists()  # no run directory for an unfinished run
    monkeypatch.setattr(jobs.JobRunner, "run_student", real)
    resumed = run_cli(tmp_path)
    err = capsys.readouterr().err
    assert "2 of 6 jobs already done (cached); 4 to run" in err
    assert "[1/4] running student:" in err and "[4/4] done in 0:" in err  # a job counter with times
    assert "evaluated batch 2/2 of 3 model(s)" in err  # without a terminal, evaluation logs lines
    # the end of a run: the verdict sentence and where the report is, not a table of every metric
    assert "kd vs base (cnn_tiny, 1 seed): too few seeds to tell on clean accuracy (" in err
    assert f"the report: kdbench report {resumed}" in err and "gaussian_noise        0.05" not in err
    a, b = read_run(first_run[1]), read_run(resumed)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    assert np.array_equal(a.correct, b.correct)
    assert a.manifest["jobs"][0]["hash"] == b.manifest["jobs"][0]["hash"]
    # retrained bit for bit: the gate sees the same networks
    assert a.manifest["weights_sha256"] == b.manifest["weights_sha256"]
    weights = a.manifest["weights_sha256"]
    assert set(weights) == {"teacher", "base", "kd"} and set(weights["kd"]) == {"0"}
    assert len({h for seeds in weights.values() for h in seeds.values()}) == 3  # three different networks


def test_verbose_and_threads(first_run, capsys):
    out, _ = first_run
    assert main(["run", str(SUITE), "--out", str(out), "--threads", "1", "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "model                    role       condition" in err and "kd vs base" in err
    assert main(["run", str(SUITE), "--out", str(out), "--threads", "0"]) == 2
    assert "--threads 0: expected a whole number of threads, 1 or more" in capsys.readouterr().err


def test_dry_run_prints_plan(first_run, capsys):
    out, _ = first_run
    assert main(["run", str(SUITE), "--out", str(out), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.count("done   ") == 6 and "student:kd:seed0" in err


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "resnet20",
        "wrn_40_2",
        "resnet18",
        "mobilenetv2",
        "kd",
        "kd_mse",
        "label_smoothing",
        "pgd",
        "gaussian_noise",
        "synthetic",
        "cifar10",
    ):
        assert name in out


def test_model_metrics_cover_every_model_independent_cell(first_run):
    run = read_run(first_run[1])
    mm = run.model_metrics
    m = run.metrics
    # every cell a model was scored in, attacks too (its own adversarial inputs)
    scored = m[m.condition != "worst_case"]
    calib = mm[mm.metric.isin(["nll", "brier", "ece"])]
    assert len(calib) == 3 * len(scored)
    assert set(mm.group) == {"clean", "noise", "attack"} and (mm.n == 120).all()
    fidelity = mm[mm.metric.isin(["agreement", "kl_teacher"])]
    # under attack, the teacher on each student's own adversarial inputs: every attack cell but worst_case
    assert set(fidelity.group) == {"clean", "noise", "attack"}
    attacked = m[(m.group == "attack") & (m.condition != "worst_case") & m.model.isin(["base", "kd"])]
    under = fidelity[(fidelity.group == "attack") & (fidelity.metric == "agreement")]
    assert sorted(zip(under.model, under.condition, under.level)) == sorted(
        zip(attacked.model, attacked.condition, attacked.level)
    )
    assert set(fidelity.model) == {"base", "kd"} and set(fidelity.reference) == {
        "teacher"
    }  # the twin against the kd's teacher
    clean = fidelity[(fidelity.model == "kd") & (fidelity.condition == "clean") & (fidelity.metric == "agreement")]
    assert clean.value.iloc[0] == pytest.approx(run.agreement.agreement.iloc[0])  # the same number agreement.csv gives
    kl = fidelity[(fidelity.model == "kd") & (fidelity.condition == "clean") & (fidelity.metric == "kl_teacher")]
    assert sorted(kl.temperature) == [1.0, 4.0] and (kl.value > 0).all()
    sal = mm[mm.metric.str.startswith("saliency")]
    assert sorted(zip(sal.model, sal.metric, sal.reference)) == [
        ("base", "saliency_teacher", "teacher"),
        ("kd", "saliency_teacher", "teacher"),
        ("kd", "saliency_twin", "base"),
    ]
    assert (sal.n == 120).all() and sal.value.between(-1, 1).all()  # evaluate.saliency (1000) > the 120 evaluated
    assert set(run.model_metric_values) >= set(sal.index)


def test_the_report_plots_agreement_under_shift_only_when_the_teacher_was_scored_there(first_run):
    from kdbench.reports import plots
    from kdbench.reports.tables import build
    from kdbench.results.checks import load_run

    data = build(load_run(first_run[1]))
    (pair,) = data.pairs
    assert plots.agreement_plot(data, pair).startswith("data:image/svg+xml;base64,")
    mm = data.run.model_metrics
    data.run.model_metrics = mm[mm.group == "clean"]  # a teacher scored on clean data only
    assert plots.agreement_plot(data, pair) is None


def test_training_curves_reach_the_run_the_report_and_the_json(first_run, tmp_path):
    import json
    import math

    out, run_dir = first_run
    run = read_run(run_dir)
    t = run.training
    assert set(t.model) == {"teacher", "base", "kd"} and set(t.epoch) == {1, 2, 3, 4}
    kd = t[(t.model == "kd") & (t.seed == 0)].pivot(index="epoch", columns="metric", values="value")
    assert set(kd.columns) == {"ce", "kd", "loss", "train_accuracy", "lr"}
    assert kd["loss"].tolist() == pytest.approx((kd["ce"] + kd["kd"]).tolist(), rel=1e-9)  # the objective
    # cosine from 0.05 over 4 epochs of 16 steps: the rate of each epoch's last step, by hand
    steps = 800 // 50
    by_hand = [0.05 * 0.5 * (1 + math.cos(math.pi * (e * steps - 1) / (4 * steps))) for e in (1, 2, 3, 4)]
    assert kd["lr"].tolist() == pytest.approx(by_hand, rel=1e-6, abs=1e-9)
    assert main(["report", str(run_dir), "-o", str(tmp_path / "r.html")]) == 0
    assert 'alt="Training loss, training accuracy and learning rate per epoch"' in (tmp_path / "r.html").read_text()
    assert main(["export", str(run_dir), "--format", "json", "-o", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["training"]
    assert len(rows) == len(t) and {"model", "seed", "epoch", "metric", "value"} <= set(rows[0])
