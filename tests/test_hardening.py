"""Hostile and mistaken input: exit 2 with one clear line naming file, key and expectation; no
traceback, no hang, nothing deleted that kdbench did not write."""

import json
import os
import pickle
import random
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_suite import GOOD

from kdbench.cli import main
from kdbench.util.atomic import atomic_dir, remove_stale_parts
from kdbench.util.markdown import md_escape

SHIPPED = sorted((Path(__file__).parents[1] / "suites").glob("*.yaml")) + sorted(
    (Path(__file__).parent / "suites").glob("*.yaml")
)


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def suite_file(tmp_path, text=GOOD, name="suite.yaml", data=None):
    p = tmp_path / name
    if data is not None:
        p.write_bytes(data)
    else:
        p.write_text(text)
    return p


def validate_error(capsys, path, *extra):
    start = time.perf_counter()
    code, out, err = cli(capsys, "validate", path, *extra)
    assert time.perf_counter() - start < 3, "validate must answer within seconds"
    assert code == 2, out + err
    return err


# ------------------------------------------------------------------------ reading the file
def test_random_bytes(tmp_path, capsys):
    err = validate_error(capsys, suite_file(tmp_path, data=bytes(random.Random(0).randrange(256) for _ in range(4000))))
    assert "suite.yaml" in err and "not UTF-8 text (byte 0x" in err


def test_deep_nesting(tmp_path, capsys):
    err = validate_error(capsys, suite_file(tmp_path, "description: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nested more than 64 levels deep" in err


def test_alias_bomb(tmp_path, capsys):
    text, prev = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n', "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ",".join(["*" + prev] * 9) + "]\n"
        prev = name
    err = validate_error(capsys, suite_file(tmp_path, GOOD + text.replace("a: &a", "x: &a") + "description: *i\n"))
    assert "expands to more than 100,000 values" in err


def test_huge_file(tmp_path, capsys):
    err = validate_error(capsys, suite_file(tmp_path, GOOD + "description: " + "x" * (3 << 20) + "\n"))
    assert "larger than 1,048,576 bytes" in err


def test_duplicate_keys_name_the_lines(tmp_path, capsys):
    err = validate_error(capsys, suite_file(tmp_path, GOOD + "train: {epochs: 3}\n"))
    lines = GOOD.splitlines()
    first = next(i for i, ln in enumerate(lines, 1) if ln.startswith("train:"))
    assert f"line {len(lines) + 1}: key 'train' appears twice in one mapping (first on line {first})" in err


def test_a_long_bad_value_is_quoted_short(tmp_path, capsys):
    err = validate_error(capsys, suite_file(tmp_path, GOOD.replace("n: 50", "n: [" + ", ".join(["1"] * 50000) + "]")))
    line = next(ln for ln in err.splitlines() if "evaluate.n" in ln)
    assert len(line) < 300


@pytest.mark.parametrize(
    "value,expected",
    [
        ("train.epochs=[1,", "not valid YAML"),
        ("train.epochs=!!python/object/apply:os.system [ls]", "not valid YAML"),
    ],
)
def test_bad_set_values(tmp_path, capsys, value, expected):
    err = validate_error(capsys, suite_file(tmp_path), "--set", value)
    assert "--set" in err and expected in err


def test_empty_suite_says_there_is_nothing_to_run(tmp_path, capsys):
    assert "nothing to run" in validate_error(capsys, suite_file(tmp_path, ""))
    assert "nothing to run" in validate_error(capsys, suite_file(tmp_path, "name: x\ndescription: y\n"))


def test_a_file_name_with_a_space_gives_a_valid_name(tmp_path, capsys):
    code, out, _ = cli(capsys, "validate", suite_file(tmp_path, GOOD.replace("name: tiny\n", ""), name="my suite.yaml"))
    assert code == 0, out


# ------------------------------------------------------------------------ values out of range
@pytest.mark.parametrize(
    "change,expected",
    [
        ({"students": {"base": {"seeds": [2**70]}}}, "students.base.seeds.0: expected less than 9223372036854775808"),
        ({"teachers": {"t": {"seed": -1}}}, "teachers.t.seed: expected greater than or equal to 0"),
        ({"students": {"base": {"train": {"lr": 0}}}}, "students.base.train.lr: expected greater than 0"),
        ({"teachers": {"t": {"train": {"lr": -1}}}}, "teachers.t.train.lr: expected greater than 0"),
        (
            {"students": {"base": {"train": {"warmup_epochs": 5}}}},
            "students.base.train: warmup_epochs (5) is longer than epochs (1)",
        ),
        ({"train": {"warmup_epochs": 2}}, "warmup_epochs (2) is longer than epochs (1)"),
        (
            {"train": {"schedule": "multistep", "milestones": [0.5, 1.5]}},
            "milestones are fractions of the epochs, in [0, 1]",
        ),
        (
            {"students": {"kd": {"method": {"name": "kd", "temperature": 0}}}},
            "a temperature must be a finite number > 0",
        ),
        ({"students": {"kd": {"method": {"name": "kd", "temperature": -4}}}}, "T < 0 inverts the objective"),
        (
            {
                "students": {
                    "kd": {
                        "method": {"name": "kd", "temperature": {"schedule": "linear", "start": 4, "end": 1, "x": 1}}
                    }
                }
            },
            "unknown key 'x' in a temperature schedule; expected schedule, start, end",
        ),
        ({"evaluate": {"gaussian_noise": {"sigmas": [2]}}}, "expected a value in [0, 1] pixel units (found: 2.0)"),
        ({"evaluate": {"gaussian_noise": {"sigmas": [-0.1]}}}, "pixel units (found: -0.1)"),
        ({"evaluate": {"gaussian_noise": {"sigmas": [".nan"]}}}, "expected a finite number (found: nan)"),
        (
            {"evaluate": {"pgd": {"eps": ["8/255"], "step_size": -0.01}}},
            "evaluate.pgd.step_size: expected a value in [0, 1]",
        ),
        ({"evaluate": {"pgd": {"eps": ["8/255"], "restarts": 3, "random_start": False}}}, "repeats the same attack"),
        (
            {"dataset": {"params": {"n_train": 200, "n_test": 0}}},
            "synthetic dataset: n_test must be an integer >= 1, got 0",
        ),
        ({"dataset": {"test_subset": 500}}, "test_subset 500 is larger than the synthetic test split (n_test = 100)"),
        ({"dataset": {"params": {"n_tset": 5}}}, "synthetic dataset: unknown parameter(s) ['n_tset']"),
        (
            {"dataset": {"name": "cifar10", "params": {}, "test_subset": 20000}},
            "test_subset 20000 is larger than CIFAR-10's test split (10,000 images)",
        ),
        (
            {"dataset": {"name": "cifar10", "params": {}, "train_subset": 60000}},
            "train_subset 60000 is larger than CIFAR-10's train split (50,000 images)",
        ),
        (
            {"dataset": {"name": "cifar10", "params": {"format": "lmdb"}}},
            "cifar10: format must be one of auto, pickle, imagefolder; got 'lmdb'",
        ),
    ],
)
def test_values_out_of_range(tmp_path, capsys, change, expected):
    raw = yaml.safe_load(GOOD)
    for section, value in change.items():
        for key, sub in value.items():
            if (
                isinstance(raw[section].get(key), dict)
                and isinstance(sub, dict)
                and key != "params"
                and section != "evaluate"
            ):
                raw[section][key] = {**raw[section][key], **sub}
            else:
                raw[section][key] = sub
    text = yaml.safe_dump(raw).replace("'.nan'", ".nan")
    err = validate_error(capsys, suite_file(tmp_path, text))
    assert expected in err, err


# ------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize(
    "checkpoint,expected",
    [
        ("missing.pt", "missing.pt': no such file"),
        ("adir", "is a directory, expected a weights file"),
        ("pkg:pyautoattack/../../../etc/passwd", "leads outside the package 'pyautoattack'"),
        ("pkg:nosuchpackage_kdb/w.pt", "package 'nosuchpackage_kdb' is not installed (pip install nosuchpackage_kdb)"),
    ],
)
def test_checkpoint_paths_are_checked_at_validate_time(tmp_path, capsys, checkpoint, expected):
    (tmp_path / "adir").mkdir()
    text = GOOD.replace("t: {arch: cnn_small}", f"t: {{arch: resnet18, checkpoint: '{checkpoint}', normalize: none}}")
    err = validate_error(capsys, suite_file(tmp_path, text))
    assert "teachers.t.checkpoint" in err and expected in err


def test_a_malicious_pickle_is_refused_naming_the_global(tmp_path):
    from kdbench.models.checkpoint import CheckpointError, load_state_dict_file

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    import torch

    saved, raw = tmp_path / "evil.pt", tmp_path / "evil.pkl"
    torch.save({"w": Evil()}, saved)
    with open(raw, "wb") as fh:
        pickle.dump({"w": Evil()}, fh, protocol=4)
    for path, reason in ((saved, "it asks for the global posix.system"), (raw, "Unsupported operand")):
        with pytest.raises(CheckpointError) as err:
            load_state_dict_file(path)
        msg = str(err.value)
        assert reason in msg and "False" not in msg, msg


def test_an_object_array_in_per_example_gets_no_unsafe_hint(tmp_path, capsys):
    import fakerun

    run = fakerun.write(tmp_path / "run", fakerun.fake_results(n=50))
    np.savez(run / "per_example.npz", correct=np.array([{"x": 1}], dtype=object), example_index=np.arange(3))
    code, _, err = cli(capsys, "report", run, "-o", tmp_path / "r.md", "--format", "md")
    assert code == 2 and "per_example.npz" in err and "allow_pickle" not in err


# ------------------------------------------------------------------------ command-line paths
def test_bad_device_and_output_paths(tmp_path, capsys):
    suite = suite_file(tmp_path)
    code, _, err = cli(capsys, "run", suite, "--device", "tpu")
    assert code == 2 and "--device 'tpu': expected auto, cpu, cuda or cuda:N" in err
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    code, _, err = cli(capsys, "run", suite, "--out", a_file)
    assert code == 2 and "--out" in err and "is a file, expected a directory" in err


def test_baseline_never_replaces_what_it_did_not_write(tmp_path, capsys):
    import fakerun

    run = fakerun.write(tmp_path / "run", fakerun.fake_results(n=50))
    precious = tmp_path / "results"
    (precious / "other").mkdir(parents=True)
    (precious / "other" / "keep.txt").write_text("keep")
    code, _, err = cli(capsys, "baseline", run, "-o", precious)
    assert code == 2 and "is not a baseline kdbench blessed; refusing to replace it" in err
    assert (precious / "other" / "keep.txt").read_text() == "keep"
    code, _, err = cli(capsys, "baseline", run, "-o", precious / "other" / "keep.txt")
    assert code == 2 and "is not a directory" in err
    blessed = tmp_path / "baselines" / "fake"
    assert cli(capsys, "baseline", run, "-o", blessed)[0] == 0
    assert cli(capsys, "baseline", run, "-o", blessed)[0] == 0  # its own baseline: replaced whole
    assert json.loads((blessed / "manifest.json").read_text())["blessed"]
    code, _, err = cli(capsys, "report", run, "-o", tmp_path)
    assert code == 2 and "is a directory" in err


# ------------------------------------------------------------------------ the store
def test_stale_part_folders_of_dead_runs_are_removed(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    from kdbench.util.atomic import HOST_TAG

    dead = jobs / f".abc123.999999999.{HOST_TAG}.x1y2.part"  # no such pid on this host
    old_style = jobs / ".abc124.999999999.x1y2.part"  # named before the host tag: this host's
    live = jobs / f".abc123.{os.getpid()}.{HOST_TAG}.x1y2.part"
    elsewhere = jobs / ".abc125.999999999.h0123abcd.x1y2.part"  # another host's worker: its pid means nothing here
    other = jobs / ".not-ours.part"
    for d in (dead, old_style, live, elsewhere, other):
        d.mkdir()
    assert sorted(remove_stale_parts(jobs)) == sorted([dead, old_style])
    assert not dead.exists() and live.exists() and elsewhere.exists() and other.exists()


def test_a_finished_job_folder_is_never_replaced_without_force(tmp_path):
    target = tmp_path / "jobs" / "h"
    with atomic_dir(target) as tmp:
        (tmp / "job.json").write_text("first")
    with atomic_dir(target, replace=False) as tmp:
        (tmp / "job.json").write_text("second")
    assert (target / "job.json").read_text() == "first"
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "job.json").write_text("third")
    assert (target / "job.json").read_text() == "third"
    assert [p.name for p in target.parent.iterdir()] == ["h"]  # nothing left beside it


# ------------------------------------------------------------------------ output hygiene
def test_markdown_cannot_make_links_or_images():
    text = md_escape("![x](http://evil.example/a.png) [click](http://evil.example)")
    assert "](" not in text.replace("\\]", "") and "\\[" in text


# ------------------------------------------------------------------------ fuzz
def _mutations(raw, rng, n):
    """Seeded random damage: drop a key, swap a value's type, push a number out of range."""
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append(path + [k])
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                paths.append(path + [i])
                walk(v, path + [i])

    walk(raw, [])
    replacements = [None, "", "x", -1, 0, 2**70, 1e308, float("nan"), [], {}, [1, "a"], {"k": 1}, True, "8/0", 3.5]
    for _ in range(n):
        doc = json.loads(json.dumps(raw))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            node = doc
            try:
                for p in path[:-1]:
                    node = node[p]
                if rng.random() < 0.3 and isinstance(node, dict):
                    node.pop(path[-1], None)
                else:
                    node[path[-1]] = rng.choice(replacements)
            except (KeyError, IndexError, TypeError):
                continue
        yield doc


def test_fuzzed_suites_give_exit_0_or_2_and_no_traceback(tmp_path, capsys):
    rng = random.Random(2026)
    start, cases = time.perf_counter(), 0
    for shipped in SHIPPED:
        raw = yaml.safe_load(shipped.read_text())
        for doc in _mutations(raw, rng, 40):
            path = tmp_path / shipped.name
            path.write_text(yaml.safe_dump(doc, allow_unicode=True))
            code = main(["validate", str(path)])  # an uncaught exception fails the test here
            out, err = capsys.readouterr()
            assert code in (0, 2), (doc, out, err)
            if code == 2:
                assert str(path) in err
            cases += 1
    assert cases == 40 * len(SHIPPED) and time.perf_counter() - start < 60


# ------------------------------------------------------------------------ data
def test_exporting_the_test_split_needs_no_train_folder(tmp_path, capsys):
    from kdbench.data import load_dataset, load_split
    from kdbench.data.writers import write_imagefolder

    root = write_imagefolder(tmp_path / "data", load_dataset("synthetic", None, n_train=20, n_test=10, seed=0))
    _, _, both = load_split("cifar10", root, "test")
    for path in sorted((root / "train").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "train").rmdir()
    code, _, err = cli(
        capsys,
        "corruptions",
        "export",
        "--data-root",
        root,
        "--names",
        "fog",
        "--severities",
        "1",
        "--out",
        tmp_path / "c",
    )
    assert code == 0, err
    assert np.load(tmp_path / "c" / "fog.npy").shape == (10, 32, 32, 3)
    _, _, alone = load_split("cifar10", root, "test")
    assert alone != both  # the identity says which files were there
    code, _, err = cli(
        capsys,
        "corruptions",
        "export",
        "--data-root",
        root,
        "--split",
        "train",
        "--names",
        "fog",
        "--out",
        tmp_path / "d",
    )
    assert code == 2 and "no CIFAR-10 data found" in err


# ------------------------------------------------------------------------ two runs at once
def test_two_runs_of_one_suite_into_one_folder_at_once(tmp_path):
    import subprocess
    import sys

    from kdbench.results.read import read_run

    suite = Path(__file__).parent / "suites" / "synthetic.yaml"
    args = [
        sys.executable,
        "-m",
        "kdbench",
        "run",
        str(suite),
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
        "--set",
        "train.epochs=1",
        "--set",
        "dataset.params.n_train=200",
        "--set",
        "evaluate.n=40",
        "--set",
        "evaluate.diagnostics.enabled=false",  # what is checked is the folder and the store, not the scores
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0 and "Traceback" not in err, err
    runs = sorted(d for d in (tmp_path / "synthetic").iterdir() if not d.is_symlink())
    assert len(runs) == 2  # each run its own directory, even when both started in the same second
    first, second = (read_run(r) for r in runs)
    assert first.metrics.equals(second.metrics) and (first.correct == second.correct).all()
    jobs = tmp_path / "_cache" / "jobs"
    assert not list(jobs.glob(".*"))  # no half-written job folder left behind
    hashes = {j["hash"] for j in first.manifest["jobs"]}
    assert hashes == {j["hash"] for j in second.manifest["jobs"]} and {p.name for p in jobs.iterdir()} >= hashes
    assert all((jobs / h).is_dir() and any((jobs / h).iterdir()) for h in hashes)


# ------------------------------------------------------------------------ light commands
@pytest.mark.parametrize("argv", [["validate", *map(str, SHIPPED[:4])], ["list"], ["schema"]])
def test_validate_list_and_schema_never_import_torch(argv):
    import subprocess
    import sys

    code = (
        "import sys; from kdbench.cli import main; rc = main(sys.argv[1:]); "
        "heavy = [m for m in ('torch', 'torchattacks', 'pandas', 'scipy', 'matplotlib') if m in sys.modules]; "
        "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stderr, done.stderr


def test_the_architecture_names_read_from_source_are_those_registered():
    from kdbench.models import MODELS

    declared = set(MODELS.names())
    list(MODELS.items())  # imports every family module, running the decorators
    assert set(MODELS._items) == declared and "resnet20" in declared and "wrn_28_10" in declared


def test_a_dry_run_downloads_nothing(tmp_path, capsys, monkeypatch):
    from kdbench.data import cifar

    monkeypatch.setattr(cifar, "download_pickles", lambda root, release: pytest.fail("a dry run downloaded"))
    text = GOOD.replace(
        "dataset: {name: synthetic, params: {n_train: 200, n_test: 100}}", "dataset: {name: cifar10, download: true}"
    )
    code, _, err = cli(
        capsys,
        "run",
        suite_file(tmp_path, text),
        "--data-root",
        tmp_path / "nothing",
        "--out",
        tmp_path / "o",
        "--dry-run",
    )
    assert (
        code == 2
        and "no CIFAR-10 data found" in err
        and "--dry-run downloads nothing: run without it to download" in err
    )


# ------------------------------------------------------------------------ round 3: names, seeds, arguments
@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("name: tiny", "name: " + "n" * 300, "name: String should have at most 64 characters"),
        ("name: tiny", "name: runs.sqlite", "name: 'runs.sqlite' is a file kdbench writes beside the suites' folders"),
        ("name: tiny", "name: MLRUNS", "is a file kdbench writes"),
        ("  base: {arch", "  " + "b" * 65 + ": {arch", "should have at most 64 characters"),
        ("seeds: [0, 1]}\n  kd", "seeds: [true, 1]}\n  kd", "students.base.seeds.0: expected a valid integer"),
        ("seeds: [0, 1]}\n  kd", "seeds: ['0', 1]}\n  kd", "students.base.seeds.0: expected a valid integer"),
        ("t: {arch: cnn_small}", "t: {arch: cnn_small, seed: yes}", "teachers.t.seed: expected a valid integer"),
        ("t: {arch: cnn_small}", "t: {arch: cnn_small, arch_args: {widht: 2}}", "cnn_small takes no argument 'widht'"),
        ("t: {arch: cnn_small}", "t: {arch: resnet20, arch_args: {num_classes: 3}}", "num_classes is the dataset's"),
        (
            "train: {epochs: 1, batch_size: 50, lr: 0.05}",
            "train: {epochs: 3, batch_size: 50, lr: 0.05, schedule: {name: StepLR, args: {step_size: -3}}}",
            "args.step_size: expected a number > 0, got -3",
        ),
        (
            "train: {epochs: 1, batch_size: 50, lr: 0.05}",
            "train: {epochs: 3, batch_size: 50, lr: 0.05, schedule: {name: MultiStepLR, args: {milestones: [2, 1]}}}",
            "args.milestones: expected increasing whole numbers > 0",
        ),
    ],
)
def test_names_seeds_and_arguments_are_refused_at_validate(tmp_path, capsys, old, new, expected):
    assert old in GOOD
    err = validate_error(capsys, suite_file(tmp_path, GOOD.replace(old, new, 1)))
    assert expected in err, err


def test_a_loaded_students_seed_must_be_an_integer(tmp_path, capsys):
    (tmp_path / "a.pt").write_bytes(b"")
    text = GOOD.replace(
        "base: {arch: cnn_small, method: baseline, seeds: [0, 1]}",
        "base: {arch: cnn_small, method: baseline, checkpoints: {yes: a.pt}}",
    )
    err = validate_error(capsys, suite_file(tmp_path, text))
    assert "checkpoints" in err and "expected a valid integer" in err, err


def test_control_characters_in_an_error_are_shown_escaped(tmp_path, capsys):
    text = GOOD.replace("  n: 50", '  n: 50\n  "\\e]0;owned\\a\\u202emal": 1')
    err = validate_error(capsys, suite_file(tmp_path, text))
    assert "\x1b" not in err and "\u202e" not in err and "\x07" not in err
    assert "\\x1b]0;owned\\x07\\u202emal" in err, err


def test_a_named_pipe_in_an_image_folder_is_refused_not_waited_on(tmp_path):
    from kdbench.data.errors import DataError
    from kdbench.data.imagefolder import list_split

    (tmp_path / "test" / "cat").mkdir(parents=True)
    os.mkfifo(tmp_path / "test" / "cat" / "a.png")
    with pytest.raises(DataError, match="a.png: not a regular file"):
        list_split(tmp_path / "test")


def test_a_foreign_sqlite_file_at_the_index_path_is_left_alone(tmp_path, capsys):
    import sqlite3

    db = tmp_path / "runs.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE runs (id INTEGER, note TEXT)")
    con.execute("INSERT INTO runs VALUES (1, 'mine')")
    con.commit()
    con.close()
    before = db.read_bytes()
    code, _, err = cli(capsys, "index", tmp_path, "--db", db)
    assert code == 2 and "a SQLite file kdbench did not write (tables: runs)" in err, err
    assert db.read_bytes() == before


def test_mlflow_naming_a_plain_file_is_refused_before_any_work(tmp_path, monkeypatch):
    from kdbench.tracking.session import TrackingError, _check_mlflow_uri

    (tmp_path / "f").write_text("")
    for uri in (str(tmp_path / "f"), (tmp_path / "f").as_uri()):
        with pytest.raises(TrackingError, match="names a file, not an MLflow store folder"):
            _check_mlflow_uri(uri)
    _check_mlflow_uri(str(tmp_path))  # a folder
    _check_mlflow_uri("http://localhost:5000")
