"""Fixtures shared by the test modules, and how the tests share the cores."""

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the cores shared among the workers: two workers of two torch threads each on two cores wait on
    # each other's threads. Set before torch is imported, so the commands the tests start inherit it.
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(_threads))


@pytest.fixture
def fresh_plugins():
    """Each test loads its own copies of the plugins it names (one process per command does so
    anyway), and leaves none registered behind it."""
    from kdbench.config import plugins

    plugins.unload_all()
    yield
    plugins.unload_all()


# The slowest modules first, in this order (their measured seconds on 2 cores, most first: 88, 65,
# 41, 39, 39, 32, 31, 28, 25, 20, 20, 18, 18, 16, 16, 14, 10, 9, 8, 7, 6, 6):
# the tests spread over the cores a module at a time (pyproject's --dist loadfile, so that a
# module's expensive fixtures run once) in this order (--no-loadscope-reorder: xdist would otherwise
# order modules by their number of tests); a long module handed out last would leave the other core idle.
SLOWEST_FIRST = [
    "test_ray.py",
    "test_jobs.py",
    "test_run.py",
    "test_workflow.py",
    "test_attacks.py",
    "test_checkpoint_students.py",
    "test_portable.py",
    "test_tracking.py",
    "test_corruptions_oracles.py",
    "test_schema_fuzz.py",
    "test_condition_subsets.py",
    "test_hardening.py",
    "test_defensive.py",
    "test_plugins.py",
    "test_feature_methods.py",
    "test_l2.py",
    "test_masking.py",
    "test_zoo.py",
    "test_api.py",
    "test_calibration.py",
    "test_corruptions.py",
    "test_surface_fuzz.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))  # stable: a module's order is kept
