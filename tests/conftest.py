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
