"""The regression gate (and baseline, compare) on fake run directories with known changes."""

import json

import fakerun
import numpy as np
import pytest

from kdbench.analysis.tolerances import Tolerances, parse_tolerances
from kdbench.cli import main

KD, BASE = "resnet20-kd", "resnet20-baseline"
PGD4 = 4 / 255


def write(tmp_path, name, pieces):
    return str(fakerun.write(tmp_path / name, pieces))


def run_gate(capsys, run, base, *flags):
    code = main(["gate", run, "--baseline", base, *flags])
    out, err = capsys.readouterr()
    return code, out, err


def verdicts(out: str) -> dict:
    """(model, metric) -> verdict, from the Markdown table the gate prints."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 12 and cells[0] not in ("model", ":---"):
            rows[(cells[0], cells[1])] = cells[-1].strip("*")
    return rows


@pytest.fixture(scope="module")
def one_seed():
    return fakerun.fake_results(n=1000, seeds=(0,))


@pytest.fixture(scope="module")
def three_seeds():
    return fakerun.fake_results(n=1000, seeds=(0, 1, 2))


@pytest.mark.parametrize("which", ["one_seed", "three_seeds"])
def test_identical_runs_pass(tmp_path, capsys, request, which):
    pieces = request.getfixturevalue(which)
    base = write(tmp_path, "base", pieces)
    run = write(tmp_path, "run", pieces)
    # 1,000 examples: a 1 pp fall (10 examples) is caught with 67% power at 0.05/21, under 80%
    code, out, _ = run_gate(capsys, run, base)
    assert code == 0
    n_inconclusive = 21 if which == "one_seed" else 7  # with three seeds only the one-seed teacher's 7
    assert f"INCONCLUSIVE (0 regressions, {n_inconclusive} inconclusive in 21 metrics)" in out
    code, out, _ = run_gate(capsys, run, base, "--tolerance", "1.5")
    assert "PASS (0 regressions in 21 metrics)" in out
    v = verdicts(out)
    assert len(v) == 21 and set(v.values()) == {"ok"}


@pytest.mark.parametrize("which", ["one_seed", "three_seeds"])
def test_a_few_percent_flipped_in_one_metric_fails_on_that_metric_alone(tmp_path, capsys, request, which):
    pieces = request.getfixturevalue(which)
    base = write(tmp_path, "base", pieces)
    worse = pieces.copy()
    rows = worse.rows(model=KD, condition="pgd", level=PGD4)
    fakerun.flip_correct_to_wrong(worse, rows, fraction=0.05)
    run = write(tmp_path, "run", worse)
    code, out, _ = run_gate(capsys, run, base)
    assert code == 1
    v = verdicts(out)
    failing = {k for k, verdict in v.items() if verdict == "REGRESSION"}
    assert failing == {(KD, "pgd ε=4/255")}
    assert "Regressions: resnet20-kd pgd ε=4/255 −2." in out
    expected_test = "McNemar, same networks, " + ("1 seed(s)" if which == "one_seed" else "3 seed(s)")
    assert expected_test in [line for line in out.splitlines() if "REGRESSION" in line and "|" in line][0]


def test_seed_level_noise_within_tolerance_passes(tmp_path, capsys, three_seeds):
    base = write(tmp_path, "base", three_seeds)
    rerun = three_seeds.copy()
    fakerun.jitter(rerun, share=0.02, seed=9)  # re-draw 2% of every row's examples
    fakerun.retrain(rerun)
    diffs = rerun.metrics["accuracy"].to_numpy() - three_seeds.metrics["accuracy"].to_numpy()
    assert np.abs(diffs).max() > 0.002  # the rerun really differs, per seed
    assert np.abs(diffs).max() < 0.02
    code, out, _ = run_gate(capsys, write(tmp_path, "run", rerun), base)
    assert code == 0, out
    assert "REGRESSION" not in out
    assert "method-level, retrained, paired over 3 seeds" in out


def test_same_noise_with_per_example_tests_would_not_be_flagged_either(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    rerun = one_seed.copy()
    fakerun.jitter(rerun, share=0.02, seed=3)
    code, out, _ = run_gate(capsys, write(tmp_path, "run", rerun), base)
    assert code == 0, out


def test_a_fall_beyond_tolerance_that_is_not_significant_is_inconclusive(tmp_path, capsys):
    """The AND: 3 of 100 examples lost is -3 pp (> 1 pp) but p = 1/8 for McNemar: not a regression;
    and 100 examples cannot show a 1 pp fall (MDD about 15 pp), so the metric is INCONCLUSIVE."""
    small = fakerun.fake_results(n=100, seeds=(0,))
    base = write(tmp_path, "base", small)
    worse = small.copy()
    r = worse.rows(model=KD, condition="clean")[0]
    right = np.flatnonzero(worse.correct[r])[:3]
    worse.correct[r, right] = False
    worse.resync()
    run = write(tmp_path, "run", worse)
    code, out, _ = run_gate(capsys, run, base)
    assert code == 0
    assert verdicts(out)[(KD, "clean")] == "INCONCLUSIVE"
    assert "kdbench gate: INCONCLUSIVE" in out
    assert run_gate(capsys, run, base, "--strict")[0] == 4
    # a tolerance the test can resolve (MDD about 15 pp here) decides again
    code, out, _ = run_gate(capsys, run, base, "--tolerance", "20")
    assert code == 0 and verdicts(out)[(KD, "clean")] == "ok", out


def test_tolerance_decides_a_significant_small_fall(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    worse = one_seed.copy()
    fakerun.flip_correct_to_wrong(worse, worse.rows(model=KD, condition="clean"), fraction=0.025)  # about -2.2 pp
    run = write(tmp_path, "run", worse)
    assert run_gate(capsys, run, base)[0] == 1
    assert run_gate(capsys, run, base, "--tolerance", "3")[0] == 0
    assert run_gate(capsys, run, base, "--tolerance", "clean=3")[0] == 0
    assert run_gate(capsys, run, base, "--tolerance", "3", "--tolerance", "clean=1")[0] == 1
    assert run_gate(capsys, run, base, "--alpha", "1e-12")[0] == 0


def test_suite_gate_section_sets_tolerances(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    worse = one_seed.copy()
    fakerun.flip_correct_to_wrong(worse, worse.rows(model=KD, condition="pgd", level=PGD4), fraction=0.05)
    worse.manifest["suite"]["gate"] = {"tolerance": 1.0, "tolerances": {"pgd:4/255": 5.0}}
    code, out, _ = run_gate(capsys, write(tmp_path, "run", worse), base)
    assert code == 0
    assert "pgd:4/255: 5 pp" in out


def test_tolerance_lookup_most_specific_wins():
    tol = Tolerances(default=1.0, by_key={"attack": 2.0, "pgd": 3.0, "pgd:8/255": 4.0, "gaussian_noise:0.1": 0.5})
    assert tol.lookup("clean", "clean", "") == 1.0
    assert tol.lookup("attack", "fgsm", "0.0313725") == 2.0
    assert tol.lookup("attack", "pgd", "0.0156863") == 3.0
    assert tol.lookup("attack", "pgd", "0.0313725") == 4.0  # 8/255 as stored
    assert tol.lookup("noise", "gaussian_noise", "0.1") == 0.5
    assert parse_tolerances(["2", "attack=3"]) == (2.0, {"attack": 3.0})
    for bad in (["-1"], ["x"], ["=2"], ["pgd=nan"]):
        with pytest.raises(ValueError):
            parse_tolerances(bad)


def test_different_test_examples_are_not_comparable(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    other = fakerun.fake_results(n=1000, seeds=(0,), seed=1)  # another random draw of 1000 test images
    code, out, err = run_gate(capsys, write(tmp_path, "run", other), base)
    assert code == 3
    assert "different test examples" in err and "1000" in err
    assert "Traceback" not in err and out == ""


def test_same_hash_but_different_index_arrays_are_not_comparable(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    shuffled = one_seed.copy()
    perm = np.random.default_rng(0).permutation(len(shuffled.example_index))
    shuffled.example_index = shuffled.example_index[perm]
    shuffled.correct = shuffled.correct[:, perm]
    code, _, err = run_gate(capsys, write(tmp_path, "run", shuffled), base)
    assert code == 3
    assert "the same examples in another order" in err


def test_different_evaluation_specification_says_what_differs(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    changed = one_seed.copy()
    changed.manifest["eval_spec_hash"] = "spec-v2"
    changed.manifest["suite"]["evaluate"]["pgd_steps"] = 20
    code, _, err = run_gate(capsys, write(tmp_path, "run", changed), base)
    assert code == 3
    assert "evaluation specification" in err and "evaluate.pgd_steps" in err


def test_missing_model_or_seed_structure_is_not_comparable(tmp_path, capsys, three_seeds, one_seed):
    base = write(tmp_path, "base", three_seeds)
    fewer = three_seeds.copy()
    keep = (fewer.metrics["model"] != KD).to_numpy()
    fewer.metrics, fewer.correct = fewer.metrics[keep].reset_index(drop=True), fewer.correct[keep]
    code, _, err = run_gate(capsys, write(tmp_path, "run_fewer", fewer), base)
    assert code == 3 and "lacks models the baseline has: resnet20-kd" in err


def test_a_one_seed_run_is_tested_against_the_baselines_seed_spread(tmp_path, capsys, three_seeds, one_seed):
    base = write(tmp_path, "base", three_seeds)
    code, out, _ = run_gate(capsys, write(tmp_path, "run_one_seed", one_seed), base)
    assert code == 0, out
    assert "method-level, retrained, 3 vs 1 seeds" in out


def test_unpaired_method_test_when_seeds_differ(tmp_path, capsys):
    a = fakerun.fake_results(n=1000, seeds=(0, 1, 2))
    b = fakerun.fake_results(n=1000, seeds=(3, 4, 5))
    code, out, _ = run_gate(capsys, write(tmp_path, "run", b), write(tmp_path, "base", a))
    assert "method-level, retrained, 3 vs 3 seeds" in out
    assert code == 0


def test_retrained_with_one_seed_each_is_inconclusive_and_listed_first(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    rerun = one_seed.copy()
    fakerun.retrain(rerun)
    run = write(tmp_path, "run", rerun)
    code, out, _ = run_gate(capsys, run, base)
    assert code == 0
    assert set(verdicts(out).values()) == {"INCONCLUSIVE"}
    assert "no seed spread to test against" in out
    assert out.index("Inconclusive (the test cannot tell") < out.index("| model |")
    assert run_gate(capsys, run, base, "--strict")[0] == 4
    # only the retrained model leaves the same-networks test
    partly = one_seed.copy()
    fakerun.retrain(partly, models={KD})
    code, out, _ = run_gate(capsys, write(tmp_path, "run_kd", partly), base, "--tolerance", "2")
    v = verdicts(out)
    assert v[(KD, "clean")] == "INCONCLUSIVE" and v[(BASE, "clean")] == "ok"
    assert "McNemar, same networks, 1 seed(s)" in out


def test_runs_without_weights_hashes_are_treated_as_retrained(tmp_path, capsys, three_seeds):
    old = three_seeds.copy()
    del old.manifest["weights_sha256"]
    code, out, _ = run_gate(capsys, write(tmp_path, "run", old), write(tmp_path, "base", three_seeds))
    assert code == 0 and "method-level, weights unrecorded, paired over 3 seeds" in out


def _replace(pieces, model, condition, matrix):
    rows = pieces.rows(model=model, condition=condition)
    assert len(rows) == matrix.shape[0]
    pieces.correct[rows] = matrix
    pieces.resync()


def test_a_real_2pp_drop_on_10000_examples_is_caught(tmp_path, capsys):
    """Re-evaluated (same networks, evaluation noise) and retrained with 5 seeds a side (fresh seeds)."""
    import calibrate

    rng = np.random.default_rng(5)
    n = 10000
    pieces = fakerun.fake_results(n=n, seeds=(0,))
    base, run = calibrate.reevaluated(rng, 1, n, 0.5, drop_pp=2.0)
    before, after = pieces.copy(), pieces.copy()
    _replace(before, KD, "clean", base)
    _replace(after, KD, "clean", run)
    code, out, _ = run_gate(capsys, write(tmp_path, "run1", after), write(tmp_path, "base1", before))
    assert code == 1 and verdicts(out)[(KD, "clean")] == "REGRESSION", out

    five = fakerun.fake_results(n=n, seeds=(0, 1, 2, 3, 4))
    old = five.copy()
    new = fakerun.fake_results(n=n, seeds=(5, 6, 7, 8, 9))
    base, run = calibrate.world(rng, 5, 5, n, 0.5, effect_pp=-2.0, same_method=True)
    _replace(old, KD, "clean", base)
    _replace(new, KD, "clean", run)
    code, out, _ = run_gate(capsys, write(tmp_path, "run5", new), write(tmp_path, "base5", old))
    assert code == 1 and verdicts(out)[(KD, "clean")] == "REGRESSION", out
    assert "method-level, retrained, 5 vs 5 seeds" in out


def test_new_models_in_the_run_are_listed_not_gated(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    more = fakerun.fake_results(
        n=1000, seeds=(0,), models=fakerun.MODELS + (("resnet20-ls", "distilled", "label_smoothing", "resnet20", 0.5),)
    )
    code, out, _ = run_gate(capsys, write(tmp_path, "run", more), base)
    assert code == 0
    assert verdicts(out)[("resnet20-ls", "clean")] == "new, not gated"


def _truncations(size: int):
    return sorted(
        {0, 1, 10, 40, size // 3, size // 2, size - 30, size - 9, size - 5}
        | set(range(60, size - 4, max(1, size // 25)))
    )


@pytest.mark.parametrize("name", ["metrics.csv", "per_example.npz", "manifest.json", "agreement.csv"])
def test_truncated_files_give_exit_2_naming_the_file(tmp_path, capsys, name):
    pieces = fakerun.fake_results(n=200, seeds=(0,))
    base = write(tmp_path, "base", pieces)
    run = fakerun.write(tmp_path / "run", pieces)
    data = (run / name).read_bytes()
    for cut in _truncations(len(data)):
        (run / name).write_bytes(data[:cut])
        code, out, err = run_gate(capsys, str(run), base)
        assert code == 2, f"{name} cut at {cut}/{len(data)}: exit {code}\n{err}"
        assert name in err and "Traceback" not in err and out == ""
    (run / name).unlink()
    code, _, err = run_gate(capsys, str(run), base)
    assert code == 2 and name in err and "missing" in err


def test_corrupt_values_give_exit_2(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    run = fakerun.write(tmp_path / "run", one_seed)
    text = (run / "metrics.csv").read_text().splitlines()
    cells = text[3].split(",")
    cells[1] = "professor"  # the role column
    text[3] = ",".join(cells)
    (run / "metrics.csv").write_text("\n".join(text) + "\n")
    code, _, err = run_gate(capsys, str(run), base)
    assert code == 2 and "metrics.csv" in err and "line 4" in err
    (run / "manifest.json").write_text("[1, 2, 3]")
    code, _, err = run_gate(capsys, str(run), base)
    assert code == 2 and "manifest.json" in err


def test_bad_flags_and_paths_give_exit_2(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    assert run_gate(capsys, base, base, "--alpha", "2")[0] == 2
    assert run_gate(capsys, base, base, "--alpha", "x")[0] == 2  # argparse
    assert run_gate(capsys, base, base, "--tolerance", "-1")[0] == 2
    assert run_gate(capsys, base, base, "--tolerance", "=3")[0] == 2
    code, _, err = run_gate(capsys, base, str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err
    assert main(["gate", base]) == 2  # --baseline is required


def test_manifest_without_comparability_keys_is_bad_input(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    old = one_seed.copy()
    del old.manifest["eval_spec_hash"]
    code, _, err = run_gate(capsys, write(tmp_path, "run", old), base)
    assert code == 2 and "eval_spec_hash" in err and "manifest.json" in err


def test_step_summary_is_appended(tmp_path, capsys, monkeypatch, one_seed):
    base = write(tmp_path, "base", one_seed)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_gate(capsys, base, base, "--tolerance", "2")
    run_gate(capsys, base, base, "--tolerance", "2")
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and text.count("## kdbench gate: PASS") == 2
    other = fakerun.fake_results(n=1000, seeds=(0,), seed=5)
    assert run_gate(capsys, write(tmp_path, "other", other), base)[0] == 3
    assert "NOT COMPARABLE" in summary.read_text()


def test_markup_in_model_names_is_refused(tmp_path, capsys):
    evil = "<img src=x onerror=alert(1)>|x"
    models = (
        ("t", "teacher", "teacher", "wrn", 0.9),
        ("b", "baseline", "baseline", "r20", 0.8),
        (evil, "distilled", "kd", "r20", 0.82),
    )
    base = write(tmp_path, "base", fakerun.fake_results(n=200, models=models))
    code, out, err = run_gate(capsys, base, base)
    assert code == 2 and "<img" not in out
    assert "metrics.csv: 'model' holds '<img src=x onerror=alert(1)>|x', which is not a model name" in err


def test_baseline_blessing_round_trip(tmp_path, capsys, three_seeds):
    run = write(tmp_path, "run", three_seeds)
    out = tmp_path / "baselines" / "fake"
    assert main(["baseline", run, "-o", str(out)]) == 0
    assert "blessed" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["blessed"]["from"].endswith("run") and manifest["eval_spec_hash"] == "spec-v1"
    size = sum(f.stat().st_size for f in out.iterdir())
    assert size < 64 * 1024  # 3 models, 7 conditions, 1000 examples: small enough to commit
    import pandas as pd

    spread = pd.read_csv(out / "seed_spread.csv", keep_default_na=False)
    clean = spread[(spread["model"] == KD) & (spread["condition"] == "clean")].iloc[0]
    accs = three_seeds.metrics[(three_seeds.metrics["model"] == KD) & (three_seeds.metrics["condition"] == "clean")][
        "accuracy"
    ]
    assert clean["seeds"] == 3 and clean["sd"] == pytest.approx(accs.std(ddof=1), rel=1e-5)
    assert "wrn40_2-teacher" not in set(spread["model"])  # one seed: no spread to record
    assert run_gate(capsys, run, str(out))[0] == 0
    assert main(["baseline", run, "-o", str(out)]) == 0  # re-blessing replaces it whole
    assert not list(out.parent.glob(".*part"))


def test_baseline_refuses_a_run_the_gate_could_not_check(tmp_path, capsys, one_seed):
    old = one_seed.copy()
    del old.manifest["example_ids_sha256"]
    code = main(["baseline", write(tmp_path, "run", old), "-o", str(tmp_path / "bl")])
    assert code == 2 and "example_ids_sha256" in capsys.readouterr().err
    assert not (tmp_path / "bl").exists()


def test_compare_prints_differences(tmp_path, capsys, one_seed):
    a = write(tmp_path, "a", one_seed)
    worse = one_seed.copy()
    fakerun.flip_correct_to_wrong(worse, worse.rows(model=KD, condition="clean"), fraction=0.1)
    b = write(tmp_path, "b", worse)
    assert main(["compare", a, b]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith(f"| {KD} | clean |"))
    assert "−8.6" in line and "McNemar, same networks, 1 seed(s) (86 lost / 0 gained)" in line
    other = write(tmp_path, "c", fakerun.fake_results(n=1000, seeds=(0,), seed=2))
    assert main(["compare", a, other]) == 0
    assert "No paired tests: different test examples" in capsys.readouterr().out


def test_example_workflow_runs_the_gate_and_always_uploads_the_report():
    from pathlib import Path

    import yaml

    wf = yaml.safe_load((Path(__file__).parents[1] / ".github" / "workflows" / "robustness-gate.yml").read_text())
    steps = wf["jobs"]["gate"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    for command in ("kdbench run", "kdbench report", "kdbench gate", "--baseline"):
        assert command in runs
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert any(str(s.get("uses", "")).startswith("actions/cache") for s in steps)


def test_the_gate_says_when_the_runs_come_from_different_set_ups(tmp_path, capsys, one_seed):
    base = write(tmp_path, "base", one_seed)
    same = one_seed.copy()
    code, out, _ = run_gate(capsys, write(tmp_path, "same", same), base)
    assert "different set-ups" not in out
    other, base_p = one_seed.copy(), one_seed.copy()
    other.manifest.update(cpu="Another CPU", threads=1)
    base_p.manifest["threads"] = 2
    base2 = write(tmp_path, "base2", base_p)
    code, out, _ = run_gate(capsys, write(tmp_path, "other", other), base2)
    assert code == 0
    assert (
        "different set-ups (CPU Fake CPU in the baseline, Another CPU in the run; torch threads 2 in the baseline, 1 "
        "in the run)" in out
    )


def test_format_1_runs_are_read_with_format_2_names(tmp_path, capsys):
    from kdbench.results.read import read_run

    new = fakerun.fake_results(n=300, seeds=(0,), corruptions=True)
    old = new.copy()  # as kdbench wrote it before corruption rows had their own names
    del old.manifest["results_format"]
    corr = old.metrics["group"] == "corruption"
    old.metrics.loc[corr, "condition"] = old.metrics.loc[corr, "condition"].str.removeprefix("c:")
    run_old, run_new = write(tmp_path, "old", old), write(tmp_path, "new", new)
    assert set(read_run(run_old).metrics.loc[corr, "condition"]) == set(new.metrics.loc[corr, "condition"])
    assert "c:gaussian_noise" in set(read_run(run_old).metrics["condition"])
    code, out, _ = run_gate(capsys, run_new, run_old)  # a format 1 baseline gates a format 2 run
    assert code == 0 and "c:fog" not in out and "fog severity 3" in out
    future = new.copy()
    future.manifest["results_format"] = 4
    code, _, err = run_gate(capsys, write(tmp_path, "future", future), run_old)
    assert code == 2 and "results format 4 was written by a newer kdbench; this one reads formats 1 to 3" in err


def test_a_corruption_tolerance_names_its_condition(three_seeds):
    from kdbench.analysis.tolerances import Tolerances

    tol = Tolerances(1.0, {"c:fog": 3.0, "c:snow:5": 4.0, "gaussian_noise": 2.0, "pgd:4/255": 5.0})
    assert tol.lookup("corruption", "c:fog", "2") == 3.0
    assert tol.lookup("corruption", "c:snow", "5") == 4.0 and tol.lookup("corruption", "c:snow", "4") == 1.0
    assert (
        tol.lookup("noise", "gaussian_noise", "0.1") == 2.0 and tol.lookup("corruption", "c:gaussian_noise", "1") == 1.0
    )
    assert tol.lookup("attack", "pgd", format(4 / 255, ".6g")) == 5.0
