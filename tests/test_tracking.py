"""Experiment tracking, read back through each backend's own reader: MLflow's client, TensorBoard's
event reader and W&B's offline run files hold every model's parameters, its curves (as it trained,
in worker processes, and replayed for models trained by an earlier run), its final metrics, and
the report; a tracked run's jobs and numbers are those of an untracked one."""

import glob
import importlib.util
import json
import warnings

import pandas as pd
import pytest
from tiny_suite import run, same_results, suite_text

from kdbench.cli import main
from kdbench.results.read import read_run
from kdbench.tracking.values import final_values, key, params_of

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # MLflow 2.14 imports pkg_resources
    from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def light(text: str) -> str:
    """The tiny suite without saliency and the masking checks: they add nothing to what is tracked."""
    return text.replace("  saliency: 30\n", "").split("  diagnostics:")[0] + "  diagnostics: {enabled: false}\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny suite tracked with MLflow and TensorBoard at --jobs 2 (trained in worker processes),
    tracked again (every model cached), and untracked into a folder of its own."""
    root = tmp_path_factory.mktemp("tracking")
    suite = root / "trk.yaml"
    suite.write_text(light(suite_text("trk", 2)))
    tracked = ["--jobs", "2", "--track", "mlflow", "--track", "tensorboard"]
    assert run(suite, root / "out", *tracked) == 0
    first = (root / "out" / "trk" / "latest").resolve()
    assert run(suite, root / "out", *tracked) == 0
    second = (root / "out" / "trk" / "latest").resolve()
    assert run(suite, root / "plain") == 0  # --jobs 1: its numbers are --jobs 2's (test_jobs)
    return root / "out", read_run(first), read_run(second), read_run(root / "plain" / "trk" / "latest")


def _mlflow_runs(out, session):
    client = MlflowClient((out / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("trk")
    found = client.search_runs([experiment.experiment_id], f"tags.`kdbench.session` = '{session}'")
    return client, {r.info.run_name: r for r in found}


def _curve(run, model, seed, metric):
    t = run.training
    rows = t[(t.model == model) & (t.seed == seed) & (t.metric == metric)].sort_values("epoch")
    return dict(zip(rows.epoch, rows.value))


def test_tracking_changes_no_job_and_no_number(runs):
    _, first, second, plain = runs
    assert first.manifest["tracking"]["backends"] == ["mlflow", "tensorboard"] and "tracking" not in plain.manifest
    assert [j["hash"] for j in first.manifest["jobs"]] == [j["hash"] for j in plain.manifest["jobs"]]
    assert not any(j["cached"] for j in first.manifest["jobs"]) and all(j["cached"] for j in second.manifest["jobs"])
    same_results(first.path, plain.path)
    same_results(second.path, plain.path)


@pytest.mark.parametrize("which", ["trained in worker processes", "cached, curves replayed"])
def test_mlflow_holds_every_model_its_parameters_curves_final_metrics_and_the_report(runs, which):
    out, first, second, _ = runs
    run = first if which.startswith("trained") else second
    client, by_name = _mlflow_runs(out, run.manifest["tracking"]["session"])
    session = run.manifest["tracking"]["session"]
    parent = by_name.pop(session)
    assert parent.data.tags["kdbench.run_dir"] == str(run.path) and parent.info.status == "FINISHED"
    assert parent.data.params["suite.name"] == "trk"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"report.html", "verdicts.txt"}
    (out / f"dl-{session}").mkdir(exist_ok=True)
    report = client.download_artifacts(parent.info.run_id, "report.html", str(out / f"dl-{session}"))
    assert "kd vs base" in open(report, encoding="utf-8").read()
    assert sorted(by_name) == ["base:seed0", "base:seed1", "kd:seed0", "kd:seed1", "t:seed0"]
    for name, r in by_name.items():
        model, seed = name.split(":seed")
        seed = int(seed)
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id and r.info.status == "FINISHED"
        assert r.data.params["recipe.lr"] == "0.05" and r.data.params["seed"] == str(seed)
        assert r.data.params["method.name"] == {"t": "baseline", "base": "baseline", "kd": "kd"}[model]
        for metric in ("loss", "train_accuracy", "lr") + (("kd", "ce") if model == "kd" else ("ce",)):
            history = {m.step: m.value for m in client.get_metric_history(r.info.run_id, metric)}
            assert len(history) == 2
            assert history == pytest.approx(_curve(run, model, seed, metric), rel=1e-9), (
                name,
                metric,
            )  # CSV: 10 digits
        final = final_values(run, model, seed)
        assert "accuracy/clean" in final and ("accuracy/worst_case/0.0156863" in final) == (model != "t")
        assert {k: v for k, v in r.data.metrics.items() if "/" in k} == pytest.approx(final, rel=1e-12)


def test_tensorboard_event_files_hold_the_same_values(runs):
    out, first, second, _ = runs
    for result in (first, second):
        session = out / "tensorboard" / "trk" / result.manifest["tracking"]["session"]
        assert "kd vs base" in (session / "report.html").read_text(encoding="utf-8")
        for model, seed in (("kd", 0), ("base", 1), ("t", 0)):
            events = EventAccumulator(str(session / model / f"seed{seed}"))
            events.Reload()
            for metric in ("loss", "train_accuracy", "lr"):
                got = {e.step: e.value for e in events.Scalars(metric)}
                assert got == pytest.approx(_curve(result, model, seed, metric), rel=1e-6)  # float32 in the file
            final = final_values(result, model, seed)
            got = {k: events.Scalars(k)[-1].value for k in final}
            assert got == pytest.approx(final, rel=1e-6) and {e.step for k in final for e in events.Scalars(k)} == {2}
            assert (
                "recipe.lr | 0.05" in events.Tensors("parameters/text_summary")[0].tensor_proto.string_val[0].decode()
            )


def test_wandb_offline_runs_hold_the_curves_and_the_final_metrics(tmp_path):
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb.sdk.internal import datastore

    suite = tmp_path / "trk.yaml"
    suite.write_text(light(suite_text("trk", 2)))
    assert run(suite, tmp_path / "out", "--track", "wandb") == 0
    result = read_run(tmp_path / "out" / "trk" / "latest")
    history, summary, names, configs = {}, {}, {}, {}
    for path in glob.glob(str(tmp_path / "out" / "wandb" / "offline-run-*" / "run-*.wandb")):
        store = datastore.DataStore()
        store.open_for_scan(path)
        name = None
        while (data := store.scan_data()) is not None:
            record = pb.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                name = names[path] = record.run.display_name
                assert record.run.run_group == result.manifest["tracking"]["session"]
                configs[name] = {i.key: json.loads(i.value_json) for i in record.run.config.update}
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                history.setdefault(name, []).append(row)
            elif kind == "summary":
                items = record.summary.update
                summary.setdefault(name, {}).update(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
                )
    session = result.manifest["tracking"]["session"]
    assert sorted(names.values()) == sorted(["base:seed0", "base:seed1", "kd:seed0", "kd:seed1", "t:seed0", session])
    assert configs[session]["suite.name"] == "trk" and configs["kd:seed1"]["recipe.lr"] == "0.05"
    assert configs["kd:seed1"]["kdbench.role"] == "distilled"
    got = {r["_step"]: r["loss"] for r in history["kd:seed1"]}
    assert got == pytest.approx(_curve(result, "kd", 1, "loss"), rel=1e-9)
    final = final_values(result, "kd", 1)
    assert {k: summary[session][f"kd:seed1/{k}"] for k in final} == pytest.approx(final, rel=1e-12)


def test_a_backend_that_is_not_installed_exits_2_naming_the_extra(tmp_path, monkeypatch, capsys):
    suite = tmp_path / "trk.yaml"
    suite.write_text(suite_text("trk", 1))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert run(suite, tmp_path / "out", "--track", "tensorboard", "--track", "mlflow") == 2
    err = capsys.readouterr().err
    assert "--track mlflow" in err and "pip install 'kdbench[mlflow]'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any work
    assert main(["run", str(suite), "--track", "neptune"]) == 2


def test_names_and_parameters_are_valid_in_every_backend():
    assert key("accuracy", "c:glass_blur", "3") == "accuracy/c_glass_blur/3"
    assert key("ece", "clean", "", None, float("nan")) == "ece/clean"
    flat = params_of({"recipe": {"lr": 0.1, "milestones": [0.5, 0.75]}, "method": {"name": "kd"}, "seed": 0})
    assert flat == {"recipe.lr": "0.1", "recipe.milestones": "[0.5, 0.75]", "method.name": "kd", "seed": "0"}
    assert set(pd.Series(list(flat)).str.fullmatch(r"[\w./\- ]+")) == {True}


def test_a_run_that_stops_is_marked_failed_in_mlflow(tmp_path):
    suite = tmp_path / "trk.yaml"
    suite.write_text(light(suite_text("trk", 2)).replace("lr: 0.05", "lr: 1.0e+30"))  # the teacher diverges
    assert run(suite, tmp_path / "out", "--track", "mlflow") == 1
    client = MlflowClient((tmp_path / "out" / "mlruns").as_uri())
    found = client.search_runs([client.get_experiment_by_name("trk").experiment_id])
    assert sorted((r.info.run_name.split("-")[0], r.info.status) for r in found) == [
        (found[0].data.tags["kdbench.session"].split("-")[0], "FAILED"),
        ("t:seed0", "FAILED"),
    ]


def test_a_backend_that_cannot_start_costs_a_line_not_the_run(tmp_path, monkeypatch, capsys):
    suite = tmp_path / "trk.yaml"
    suite.write_text(light(suite_text("trk", 1)))
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "a-file" / "mlruns").as_uri())  # not a folder
    assert run(suite, tmp_path / "out", "--track", "mlflow", "--track", "tensorboard") == 0
    err = capsys.readouterr().err
    assert err.count("tracking mlflow") == 1 and "could not be started" in err and "Traceback" not in err
    result = read_run(tmp_path / "out" / "trk" / "latest")
    assert result.manifest["tracking"]["backends"] == ["tensorboard"]
    assert (tmp_path / "out" / "tensorboard" / "trk" / result.manifest["tracking"]["session"] / "report.html").is_file()
