"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_put_back() -> Iterator[None]:
    """Undo what a command run in-process (``main([...])``) configured.

    The entry point configures structlog for the whole process, writing to the
    ``sys.stderr`` of that moment: pytest's capture of that test, closed after
    it. Put back, no later test logs into a closed stream.
    """
    yield
    structlog.reset_defaults()
