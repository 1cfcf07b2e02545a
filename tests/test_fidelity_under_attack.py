"""Fidelity under attack: the teacher run on the student's own adversarial examples, top-1
agreement and KL(teacher || student) per attack cell, for both twins, tested by the report as the
other model metrics are."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from attack_helpers import build
from tiny_suite import run, suite_text

from kdbench.data import load_dataset
from kdbench.evaluation.evaluate import evaluate
from kdbench.models import create_model, wrap


def test_the_teachers_see_the_students_own_adversarial_examples():
    torch.set_num_threads(1)
    test = load_dataset("synthetic", None, n_train=10, n_test=40, seed=3).test
    torch.manual_seed(0)
    student, teacher, other = (wrap(create_model("cnn_tiny"), "cifar10").eval() for _ in range(3))
    conds = build("clean") + build("pgd", eps=[4 / 255], steps=2) + build("fgsm", norm="L2", eps=[0.25])
    args = (conds, test.images, test.labels, test.indices)
    got = evaluate({"s": student}, *args, batch_size=16, references={"s": [teacher, other]})["s"]
    plain = evaluate({"s": student}, *args, batch_size=16)["s"]
    assert torch.equal(got.correct, plain.correct)  # the teachers add numbers, never change the student's
    names = [c.condition for c in got.cells]
    assert sorted(got.reference_logits) == [names.index("pgd"), names.index("fgsm_l2")]
    x, y = test.images.float() / 255, test.labels
    for row, cond in ((names.index("pgd"), conds[1]), (names.index("fgsm_l2"), conds[2])):
        level = cond.levels()[0]
        adv = torch.cat([cond.attack(student, x[s : s + 16], y[s : s + 16], test.indices[s : s + 16], level)
                         for s in range(0, 40, 16)])  # fmt: skip
        with torch.no_grad():
            want = torch.stack([teacher(adv), other(adv)])
        assert got.reference_logits[row].shape == (2, 40, 10)
        assert torch.allclose(got.reference_logits[row], want, atol=1e-6)
    assert got.attack_seconds["teacher_on_adversarial"] > 0 and "teacher_on_adversarial" not in plain.attack_seconds


def test_both_twins_get_fidelity_in_every_attack_cell_and_the_report_tests_it(tmp_path):
    from kdbench.cli import main
    from kdbench.reports.calibration import calibration_table
    from kdbench.results.read import read_run

    suite = tmp_path / "tiny.yaml"
    suite.write_text(suite_text("fid", 1))
    assert run(suite, tmp_path / "out") == 0
    run_dir = tmp_path / "out" / "fid" / "latest"
    mm = pd.read_csv(run_dir / "model_metrics.csv", dtype={"level": str}, keep_default_na=False)
    attacked = mm[(mm.group == "attack") & mm.metric.isin(["agreement", "kl_teacher"])]
    cells = {("fgsm", "0.0156863"), ("pgd", "0.0156863")}  # not worst_case: it has no inputs of its own
    for model in ("base", "kd"):
        mine = attacked[attacked.model == model]
        assert set(zip(mine.condition, mine.level)) == cells and set(mine.reference) == {"t"}
        assert set(mine.seed) == {0, 1} and (mine.value > -1e-6).all()  # a KL rounds to -1e-9 at worst
        ag = mine[mine.metric == "agreement"].value
        assert ((ag >= 0) & (ag <= 1)).all()
    # agreement under attack, by hand from the run's own files: the student's logits under pgd
    # (calibration keeps them) against the teacher's, which the evaluation job stored
    store = tmp_path / "out" / "_cache" / "jobs"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    job = next(j for j in manifest["jobs"] if j["id"] == "evaluate:kd:seed0")
    with np.load(store / job["hash"] / "eval.npz") as z:
        names = list(z["condition"])
        row = names.index("pgd")
        student = z["logits"][list(z["logit_rows"]).index(row)]
        teacher = z["reference_logits"][list(z["reference_rows"]).index(row)][0]
    by_hand = float((student.argmax(1) == teacher.argmax(1)).mean())
    got = attacked[(attacked.model == "kd") & (attacked.seed == 0) & (attacked.condition == "pgd")]
    assert got[got.metric == "agreement"].value.iloc[0] == pytest.approx(by_hand, abs=1e-9)
    assert "teacher_on_adversarial" in json.dumps(manifest["attack_seconds"])
    t = calibration_table(read_run(run_dir), "base", "kd")
    under = t[(t.group == "attack") & (t.metric == "agreement")]
    assert len(under) == 2 and under.p.notna().all()  # two seeds each: the method-level test
    assert main(["report", str(run_dir), "--format", "md", "-o", str(tmp_path / "r.md")]) == 0
    assert "pgd ε=4/255 (own adversarial inputs)" in (tmp_path / "r.md").read_text()


def test_it_can_be_turned_off_and_leaves_the_evaluations_specification_alone(tmp_path):
    import collections

    import yaml

    from kdbench.config import Suite
    from kdbench.pipeline.plan import make_plan

    raw = yaml.safe_load(suite_text("fid", 1))
    ids = collections.defaultdict(lambda: "x")
    on = make_plan(Suite.model_validate(raw), "d", "e", ids)
    raw["evaluate"]["fidelity_under_attack"] = False
    off = make_plan(Suite.model_validate(raw), "d", "e", ids)
    assert on.eval_spec == off.eval_spec  # the gate compares the two runs' metrics as comparable
    refs = {m: j.spec.get("attack_reference") for (m, _), j in on.eval_jobs.items()}
    assert refs == {"t": None, "base": ["t:seed0"], "kd": ["t:seed0"]}  # the twin measured against kd's teacher
    assert [d.id for d in on.eval_jobs[("kd", 1)].deps] == ["student:kd:seed1", "teacher:t:seed0"]
    assert not any("attack_reference" in j.spec for j in off.eval_jobs.values())
    assert on.eval_jobs[("t", 0)].hash == off.eval_jobs[("t", 0)].hash
