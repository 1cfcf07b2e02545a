"""The tiny suite the executor tests run (test_jobs, test_ray): a teacher, a baseline and a
distilled student of two seeds each on synthetic data, about a second a job on one thread; and
the helpers they share. Results must not depend on the executor, so each compares result files."""

from __future__ import annotations

import textwrap
from pathlib import Path

from kdbench.cli import main

SUITE = """
name: NAME
dataset: {name: synthetic, params: {n_train: 240, n_test: 120}}
train: {epochs: EPOCHS, batch_size: 40, lr: 0.05, augment: false}
teachers:
  t: {arch: cnn_tiny, evaluate: clean}
students:
  base: {arch: cnn_tiny, method: baseline, seeds: [0, 1]}
  kd: {arch: cnn_tiny, method: METHOD, teachers: [t], seeds: [0, 1]}
evaluate:
  n: 60
  batch_size: 30
  saliency: 30
  gaussian_noise: {sigmas: [0.05]}
  fgsm: {eps: [4/255]}
  pgd: {eps: [4/255], steps: 2}
  diagnostics: {subset: 20, unbounded_steps: 5, steps_factor: 2}
"""
RESULTS = ("metrics.csv", "per_example.npz", "agreement.csv", "model_metrics.csv")


def suite_text(name: str, epochs: int, method: str = "kd", plugins: tuple[str, ...] = ()) -> str:
    text = textwrap.dedent(SUITE).replace("NAME", name).replace("EPOCHS", str(epochs)).replace("METHOD", method)
    return f"plugins: [{', '.join(plugins)}]\n{text}" if plugins else text


def run(suite: Path, out: Path, *extra) -> int:
    """`kdbench run` on the CPU at one torch thread (a Ray task's, with one CPU per job)."""
    return main(["run", str(suite), "--out", str(out), "--device", "cpu", "--threads", "1", *map(str, extra)])


def same_results(a: Path, b: Path) -> None:
    for name in RESULTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
