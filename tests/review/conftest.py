"""Fixtures for the review commands: one scripted study, built once and only read by the tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The scripted fake pipeline lives with the loop's tests; reuse it rather than copy it.
SEARCH_TESTS = str(Path(__file__).resolve().parent.parent / "search")
if SEARCH_TESTS not in sys.path:
    sys.path.insert(0, SEARCH_TESTS)

from overnight import Overnight, build_overnight  # noqa: E402


@pytest.fixture(scope="session")
def overnight(tmp_path_factory: pytest.TempPathFactory) -> Overnight:
    """A finished study: baseline, keep, keep, discard, pruned, and a twin of the discard."""
    return build_overnight(tmp_path_factory.mktemp("overnight"))
