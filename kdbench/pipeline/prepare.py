"""What every process that runs jobs sets up first, the driver and each Ray worker alike: the
device, deterministic kernels, the data and the evaluated examples, and the plan."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from kdbench.config import Suite
from kdbench.models.teachers import checkpoint_identity, resolve_checkpoint, robustbench_identity
from kdbench.pipeline.plan import make_plan
from kdbench.util.errors import UserError
from kdbench.util.hashing import file_sha256


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here")
    return torch.device(choice)


def make_deterministic(on: bool = True) -> None:
    """Deterministic kernels (the default: the same suite and seed give the same numbers), or, off,
    the fastest ones cuDNN finds by timing (cudnn.benchmark), whose results vary run to run."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.benchmark = not on
    torch.backends.cudnn.deterministic = on


def data_root_of(suite: Suite, data_root) -> Path | None:
    """Where the suite's dataset is read from (the suite's own root, else --data-root, ...); None for synthetic data."""
    from kdbench.data import resolve_root

    return resolve_root(suite.dataset.root or data_root) if suite.dataset.name != "synthetic" else None


def load_data(suite: Suite, data_root, fetch: bool = True):
    from kdbench.data import load_dataset

    ds = suite.dataset
    root = data_root_of(suite, data_root)
    corruptions = getattr(suite.evaluate, "corruptions", None)
    if corruptions is not None and corruptions.root is None and root is not None:
        corruptions.root = str(root)  # released CIFAR-10-C files sit beside the dataset by default
    return load_dataset(
        ds.name,
        root,
        download=ds.download and fetch,
        train_subset=ds.train_subset,
        test_subset=ds.test_subset,
        subset_seed=ds.subset_seed,
        **ds.params,
    )


def eval_examples(suite: Suite, test):
    """The evaluated examples in evaluation order: all, or evaluate.n of them (class-stratified,
    ascending); where conditions take fewer (their own n), the order begins with those subsets."""
    from kdbench.config import conditions_of
    from kdbench.data.subsets import nested_order, stratified_subset

    n, seed = suite.evaluate.n, suite.evaluate.seed
    if n is not None and n < len(test):
        test = test.subset(stratified_subset(test.labels, n, seed))
    sizes = {c.params.n for c in conditions_of(suite.evaluate) if c.params.n is not None and c.params.n < len(test)}
    return test.subset(nested_order(test.labels, sizes, seed)) if sizes else test


def prepare(suite: Suite, data_root=None, model_dir: Path | None = None, fetch: bool = True):
    splits = load_data(suite, data_root, fetch)  # a dry run downloads nothing
    test_eval = eval_examples(suite, splits.test)
    # Indices alone are not enough: position k is another image in another copy of the dataset.
    h = hashlib.sha256(test_eval.indices.numpy().astype("<i8").tobytes())
    h.update(test_eval.labels.numpy().astype("<i8").tobytes())
    h.update(test_eval.images.numpy().tobytes())
    ids_sha = h.hexdigest()
    identities = {n: checkpoint_identity(t) for n, t in suite.teachers.items() if t.source == "checkpoint"}
    identities |= {
        n: robustbench_identity(t, model_dir, fetch, suite.dataset.name)
        for n, t in suite.teachers.items()
        if t.source == "robustbench"
    }
    identities |= {  # a loaded student's weights file, per seed
        (n, seed): file_sha256(resolve_checkpoint(file))
        for n, s in suite.students.items()
        for seed, file in (s.checkpoints or {}).items()
    }
    plan = make_plan(suite, splits.identity, ids_sha, identities)
    return splits, test_eval, plan
