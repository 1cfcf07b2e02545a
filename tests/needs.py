"""Tests that need a system tool (Chromium, ImageMagick, TeX) skip with a reason where it is
missing, so that a fresh machine with only the pip install runs green; under CI=true, where
.ci/run installs them, a missing tool is a failure instead."""

import os

import pytest


def require(available: bool, what: str, install: str) -> None:
    """Skip (or, under CI=true, fail) unless `what` is available; `install` says how to get it."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what} is missing ({install})", pytrace=False)
    pytest.skip(f"{what} is not installed here ({install}); CI=true makes this a failure")
