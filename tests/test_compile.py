"""`compile` in the recipe and in evaluate: eager on the CPU with one line; where it compiles, the
training goes through torch.compile (checked here with dynamo's `eager` backend, which traces the
model as a GPU run would and computes with the same kernels, so the weights must match eager's
bit for bit); a backend that fails falls back to eager with one line, mid-run, and changes
nothing; `false` leaves every hash as it was."""

from __future__ import annotations

import textwrap

import pytest
import torch

from kdbench.cli import main
from kdbench.config import TrainRecipe
from kdbench.models import compiled as compiled_module
from kdbench.models import create_model, wrap
from kdbench.training.loop import train
from kdbench.training.methods import METHODS, build_method


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(
        0, 10, (n,), generator=g
    )


def _net(seed=0):
    torch.manual_seed(seed)
    return wrap(create_model("cnn_tiny"), "cifar10")


def _train(mode, method="kd", augment=True):
    images, labels = _data()
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=0.05, augment=augment, compile=mode)
    net, teacher = _net(0), _net(1).eval()
    lines = []
    history = train(
        net, images, labels, recipe, build_method(METHODS.get(method).Params()), 0, teachers=[teacher], say=lines.append
    )
    return net.state_dict(), history, lines


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_on_the_cpu_compile_runs_eager_and_says_why_once():
    eager, history, lines = _train(False)
    assert lines == []
    got, got_history, lines = _train("default")
    assert lines == [
        "train: compile 'default' runs eager: on the CPU torch.compile gains little and costs minutes of compiling, "
        "so kdbench compiles on GPUs only"
    ]
    _same(eager, got)
    assert history == got_history


@pytest.fixture
def compiles_here(monkeypatch):
    """As on a GPU: the model goes through torch.compile; dynamo's eager backend keeps the kernels."""
    monkeypatch.setattr(compiled_module, "eager_reason", lambda device: None)
    monkeypatch.setattr(compiled_module, "BACKEND", "eager")
    import kdbench.training.loop as loop

    monkeypatch.setattr(loop, "eager_reason", lambda device: None)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_the_training_step_goes_through_torch_compile_with_the_same_numbers(compiles_here):
    calls = []
    real = torch.compile

    def counting(model, **kw):
        calls.append(kw)
        return real(model, **kw)

    eager, history, _ = _train(False)
    torch.compile = counting
    try:
        got, got_history, lines = _train("reduce-overhead")
    finally:
        torch.compile = real
    assert lines == []
    assert calls == [{"mode": "reduce-overhead", "backend": "eager"}] * 2  # the student and its teacher
    _same(eager, got)
    assert history == got_history


def test_a_compiler_that_fails_falls_back_to_eager_with_one_line(compiles_here, monkeypatch):
    def broken(gm, example_inputs):
        raise RuntimeError("Cannot find a working triton installation")

    monkeypatch.setattr(compiled_module, "BACKEND", broken)
    eager, history, _ = _train(False, augment=False)
    got, got_history, lines = _train("default", augment=False)
    # one line per model: the student, and its teacher (run on each batch: no cached logits given)
    why = "failed (RuntimeError: Cannot find a working triton installation); eager"
    assert lines == [f"train: torch.compile 'default' {why}", f"train teacher: torch.compile 'default' {why}"]
    _same(eager, got)
    assert history == got_history


def test_feature_methods_say_why_they_run_eager(compiles_here):
    _, _, lines = _train("default", method="fitnets")
    assert lines == ["train: compile 'default' runs eager: fitnets reads the networks' stages through hooks"]


def test_compile_false_leaves_the_hashes_and_a_value_enters_them(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        textwrap.dedent(
            """
            name: c
            dataset: {name: synthetic, params: {n_train: 40, n_test: 20}}
            train: {epochs: 1, batch_size: 20}
            students:
              base: {arch: cnn_tiny, method: baseline, seeds: [0]}
            evaluate: {n: 20}
            """
        )
    )

    def hashes(*sets):
        from kdbench.config import load_suite
        from kdbench.pipeline.prepare import prepare

        return [j.hash for j in prepare(load_suite(suite, list(sets)))[2].jobs]

    plain = hashes()
    assert hashes("train.compile=false", "evaluate.compile=false") == plain
    train_c, eval_c = hashes("train.compile=default"), hashes("evaluate.compile=reduce-overhead")
    assert train_c[0] != plain[0] and train_c[1] != plain[1]  # the student, and so its evaluation
    assert eval_c[0] == plain[0] and eval_c[1] != plain[1]  # the evaluation only
    assert main(["validate", str(suite), "--set", "train.compile=max-autotune"]) == 2
    assert "compile" in capsys.readouterr().err
