"""Fixtures shared by the test modules."""

import pytest


@pytest.fixture
def fresh_plugins():
    """Each test loads its own copies of the plugins it names (one process per command does so
    anyway), and leaves none registered behind it."""
    from kdbench.config import plugins

    plugins.unload_all()
    yield
    plugins.unload_all()


# The slowest modules first (in this order: their measured seconds on 2 cores, most first). The
# tests spread over the cores a module at a time (pyproject's --dist loadfile, so that a module's
# expensive fixtures run once); a long module handed out last would leave the other core idle.
SLOWEST_FIRST = [
    "test_jobs.py",
    "test_ray.py",
    "test_corruptions_oracles.py",
    "test_run.py",
    "test_checkpoint_students.py",
    "test_portable.py",
    "test_attacks.py",
    "test_workflow.py",
    "test_tracking.py",
    "test_schema_fuzz.py",
    "test_hardening.py",
    "test_corruptions.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))  # stable: a module's order is kept
