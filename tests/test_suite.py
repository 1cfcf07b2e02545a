"""Every schema error path: one clear message per problem, naming file and key, exit code 2."""

import json
import textwrap

import pytest
import yaml

from kdbench.cli import main
from kdbench.config import SuiteError, load_suite

GOOD = """
name: tiny
dataset: {name: synthetic, params: {n_train: 200, n_test: 100}}
train: {epochs: 1, batch_size: 50, lr: 0.05}
teachers:
  t: {arch: cnn_small}
students:
  base: {arch: cnn_small, method: baseline, seeds: [0, 1]}
  kd: {arch: cnn_small, method: {name: kd, alpha: 0.5, temperature: 4}, teachers: [t], seeds: [0, 1]}
evaluate:
  n: 50
  gaussian_noise: {sigmas: [0.05]}
  fgsm: {eps: [2/255, "4/255", 0.03]}
"""


def write(tmp_path, text, name="suite.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def problems(tmp_path, text):
    with pytest.raises(SuiteError) as err:
        load_suite(write(tmp_path, text))
    return str(err.value)


def mutate(path_value_pairs):
    raw = yaml.safe_load(GOOD)
    for path, value in path_value_pairs:
        node = raw
        for part in path[:-1]:
            node = node[part]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return yaml.safe_dump(raw)


def test_good_suite_loads_and_pairs(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    assert [(p.distilled, p.baseline) for p in suite.pairs()] == [("kd", "base")]
    assert suite.students["kd"].role == "distilled" and suite.students["base"].role == "baseline"
    assert suite.evaluate.fgsm.eps == pytest.approx([2 / 255, 4 / 255, 0.03])
    assert suite.evaluate.clean is not None  # clean always runs
    assert suite.twin_warnings() == []


def test_misspelt_key_gets_did_you_mean(tmp_path):
    msg = problems(tmp_path, GOOD.replace("batch_size: 50", "batch_sise: 50"))
    assert "suite.yaml: train.batch_sise: unknown key 'batch_sise' (did you mean 'batch_size'?)" in msg


def test_misspelt_section_and_condition(tmp_path):
    msg = problems(tmp_path, GOOD.replace("gaussian_noise:", "gausian_noise:"))
    assert "evaluate.gausian_noise: unknown key" in msg and "did you mean 'gaussian_noise'" in msg


def test_unknown_architecture_suggests(tmp_path):
    msg = problems(tmp_path, GOOD.replace("base: {arch: cnn_small", "base: {arch: cnn_smal"))
    assert "students.base.arch: unknown architecture 'cnn_smal' (did you mean 'cnn_small'?)" in msg


def test_unknown_method_suggests(tmp_path):
    msg = problems(tmp_path, GOOD.replace("method: baseline", "method: baseline_"))
    assert "students.base.method: unknown method 'baseline_' (did you mean 'baseline'?)" in msg


def test_wrong_type_says_expected_and_found(tmp_path):
    msg = problems(tmp_path, GOOD.replace("epochs: 1", "epochs: many"))
    assert "train.epochs: expected a valid integer" in msg and "(found: 'many')" in msg


def test_method_parameter_out_of_range(tmp_path):
    msg = problems(tmp_path, GOOD.replace("alpha: 0.5", "alpha: 1.5"))
    assert "students.kd.method.alpha:" in msg and "1.5" in msg


def test_unknown_method_parameter(tmp_path):
    msg = problems(tmp_path, GOOD.replace("alpha: 0.5", "alpah: 0.5"))
    assert "students.kd.method.alpah: unknown key 'alpah' (did you mean 'alpha'?)" in msg


def test_missing_required_key(tmp_path):
    msg = problems(tmp_path, mutate([(["students", "base", "arch"], KeyError)]))
    assert "students.base.arch: required key is missing" in msg


def test_unknown_teacher_reference(tmp_path):
    msg = problems(tmp_path, GOOD.replace("teachers: [t]", "teachers: [tt]"))
    assert "students.kd.teachers: unknown teacher 'tt' (did you mean 't'?)" in msg


def test_teacher_needed_and_ensemble_required(tmp_path):
    msg = problems(tmp_path, GOOD.replace(", teachers: [t]", ""))
    assert "method 'kd' learns from a teacher" in msg
    two = GOOD.replace("  t: {arch: cnn_small}", "  t: {arch: cnn_small}\n  u: {arch: resnet8}").replace(
        "teachers: [t]", "teachers: [t, u]"
    )
    assert "explicit 'ensemble'" in problems(tmp_path, two)


def test_epsilon_must_be_in_pixel_units(tmp_path):
    msg = problems(tmp_path, GOOD.replace("0.03]", "8]"))
    assert "evaluate.fgsm.eps" in msg and "write 8/255" in msg
    assert "evaluate.fgsm.eps.0:" in problems(tmp_path, GOOD.replace("2/255", "'two/255'"))


def test_several_problems_reported_together(tmp_path):
    text = GOOD.replace("epochs: 1", "epochs: 0").replace("batch_size: 50", "batchsize: 50")
    msg = problems(tmp_path, text)
    assert "train.epochs" in msg and "train.batchsize" in msg and msg.count("suite.yaml:") == 2


def test_not_yaml_names_line(tmp_path):
    msg = problems(tmp_path, "name: x\nstudents: [a\n")
    assert "suite.yaml: line" in msg and "not valid YAML" in msg


def test_missing_file(tmp_path):
    with pytest.raises(SuiteError, match="cannot read the file"):
        load_suite(tmp_path / "nope.yaml")


def test_recipe_mismatch_between_twins_is_reported(tmp_path):
    suite = load_suite(
        write(
            tmp_path, GOOD.replace("teachers: [t], seeds: [0, 1]}", "teachers: [t], seeds: [0, 1], train: {lr: 0.1}}")
        )
    )
    assert any("recipes differ in lr" in w for w in suite.twin_warnings())


def test_set_overrides(tmp_path):
    suite = load_suite(write(tmp_path, GOOD), ["train.epochs=3", "students.kd.method.temperature=2"])
    assert suite.train.epochs == 3 and suite.students["kd"].method.temperature == 2


def test_cli_validate_exit_codes(tmp_path, capsys):
    good = write(tmp_path, GOOD)
    assert main(["validate", str(good)]) == 0
    bad = write(tmp_path, GOOD.replace("batch_size: 50", "batch_sise: 50"), "bad.yaml")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: train.batch_sise" in err and "Traceback" not in err
    assert main(["run", str(bad), "--dry-run"]) == 2
    assert main(["validate", str(good), "--set", "train.epochs"]) == 2


def test_cli_schema_is_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "kdbench suite"
    assert {"dataset", "train", "teachers", "students", "evaluate", "compare"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_shipped_suites_validate():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[1].glob("suites/*.yaml")):
        load_suite(path)


@pytest.mark.parametrize(
    "change,expected",
    [
        ("evaluate:\n  robust: {eps: [8/255]}\n  pgd: {eps: [2/255]}", "pgd asked for twice"),
        (
            "students:\n  kd: {arch: cnn_small, method: baseline, seeds: [0]}\nevaluate:\n  transfer: {eps: [8/255], "
            "source: teacher}",
            "no model of the suite has a 'teacher'",
        ),
        ("evaluate:\n  transfer: {eps: [8/255], source: techer}", "unknown model 'techer' (did you mean 'teacher'?)"),
        ("evaluate:\n  pgd: {eps: [8/255], restarts: 3, random_start: false}", "repeats the same attack"),
        ("evaluate:\n  pgd: {eps: [8/255], step_size: -0.01}", "expected a value in [0, 1] pixel units (found: -0.01)"),
        ("evaluate:\n  autoattack: {eps: [8/255], version: custom}", "needs 'attacks'"),
        ("evaluate:\n  autoattack: {eps: [8/255], attacks: [apgd-ce]}", "is for version custom"),
        ("teachers:\n  t: {arch: cnn_small, method: {name: kd, temperature: 4}}", "learns from a teacher"),
        (
            "teachers:\n  t: {arch: cnn_small, checkpoint: x.pt, method: baseline}",
            "only a teacher trained from the recipe",
        ),
        ("students:\n  base: {arch: cnn_small, method: {name: baseline, temperature: 0}}", "greater than 0"),
    ],
)
def test_attack_and_teacher_method_errors(tmp_path, change, expected):
    raw = yaml.safe_load(GOOD)
    for section, value in yaml.safe_load(change).items():
        raw[section] = {**raw[section], **value} if section != "evaluate" else {"n": 50, **value}
    assert expected in problems(tmp_path, yaml.safe_dump(raw))


def test_robust_preset_and_teacher_methods_validate(tmp_path):
    raw = yaml.safe_load(GOOD)
    raw["teachers"]["t"]["method"] = {"name": "baseline", "temperature": 100}
    raw["evaluate"] = {
        "robust": {"eps": ["8/255"]},
        "transfer": {"eps": ["8/255"], "source": "baseline_twin"},
        "square": {"eps": ["8/255"]},
    }
    suite = load_suite(write(tmp_path, yaml.safe_dump(raw)))
    assert suite.teachers["t"].method_spec.temperature == 100
    from kdbench.config import conditions_of

    assert [c.name for c in conditions_of(suite.evaluate) if c.group == "attack"] == [
        "square",
        "transfer",
        "autoattack",
        "fgsm",
        "pgd",
        "cw",
    ]


def test_the_batch_size_enters_the_evaluation_spec_only_where_an_attack_depends_on_it(tmp_path):
    from kdbench.pipeline.plan import eval_spec_of

    def spec(extra, batch_size):
        text = GOOD + f"  batch_size: {batch_size}\n" + extra
        return eval_spec_of(load_suite(write(tmp_path, text)), "ids")

    assert spec("", 64) == spec("", 128)  # noise, FGSM (and PGD, CW, APGD) draw per example
    assert spec("  pgd: {eps: [2/255], restarts: 2}\n", 64) == spec("  pgd: {eps: [2/255], restarts: 2}\n", 128)
    for batched in ("  square: {eps: [2/255], queries: 10}\n", "  autoattack: {eps: [2/255]}\n"):
        assert spec(batched, 64) != spec(batched, 128)
        assert spec(batched, 64)["batch_size"] == 64


def test_a_teacher_can_be_scored_on_a_list_of_conditions(tmp_path):
    from kdbench.pipeline.plan import make_plan

    text = GOOD.replace("t: {arch: cnn_small}", "t: {arch: cnn_small, evaluate: [gaussian_noise]}")
    suite = load_suite(write(tmp_path, text))
    plan = make_plan(suite, "data", "ids", {})
    (job,) = [j for (name, _), j in plan.eval_jobs.items() if name == "t"]
    assert job.spec["only"] == ["clean", "gaussian_noise"]  # clean always
    clean_only = make_plan(
        load_suite(write(tmp_path, GOOD.replace("t: {arch: cnn_small}", "t: {arch: cnn_small, evaluate: clean}"))),
        "data",
        "ids",
        {},
    )
    assert [j.spec["only"] for (name, _), j in clean_only.eval_jobs.items() if name == "t"] == [["clean"]]
    bad = problems(tmp_path, GOOD.replace("t: {arch: cnn_small}", "t: {arch: cnn_small, evaluate: [gausian_noise]}"))
    assert "teachers.t.evaluate" in bad and "gausian_noise" in bad and "gaussian_noise" in bad


def test_only_gaussian_noise_does_not_pull_in_the_corruption_of_that_name():
    import torch

    from kdbench.config import EvaluateSpec, conditions_of
    from kdbench.evaluation.evaluate import evaluate

    conds = conditions_of(
        EvaluateSpec(gaussian_noise={"sigmas": [0.1]}, corruptions={"names": ["gaussian_noise"], "severities": [1]})
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    images, labels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (4,))
    out = evaluate(
        {"t": model, "s": model}, conds, images, labels, torch.arange(4), batch_size=4, only={"t": {"gaussian_noise"}}
    )
    assert {c.group for c in out["t"].cells} == {"clean", "noise"}
    assert {c.group for c in out["s"].cells} == {"clean", "noise", "corruption"}
