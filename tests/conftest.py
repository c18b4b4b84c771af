"""Shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog

from events import Published, Publisher

if TYPE_CHECKING:
    from _cdp import Page
    from _redis_support import RedisServer


@pytest.fixture(autouse=True)
def _structlog_put_back() -> Iterator[None]:
    """Undo what a command run in-process (``main([...])``) configured.

    The entry point configures structlog for the whole process, writing to the
    ``sys.stderr`` of that moment: pytest's capture of that test, closed after
    it. Put back, no later test logs into a closed stream.
    """
    yield
    structlog.reset_defaults()


@pytest.fixture
def publisher() -> Publisher:
    return Publisher()


@pytest.fixture
def items(publisher: Publisher) -> list[Published]:
    """Everything ``publisher`` publishes during the test, in order."""
    seen: list[Published] = []
    publisher.add_listener(seen.append)
    return seen


@pytest.fixture
def quiet_server_logs() -> Iterator[None]:
    """In-process servers log into a capture, not onto the test's output."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    """A headless Chromium page with its own profile (integration tests only)."""
    # tests/integration is on sys.path once its test modules are collected.
    from _cdp import CHROMIUM, open_page

    if CHROMIUM is None:
        pytest.fail("chromium is not installed; scripts/ensure-system-deps installs it")
    async with open_page(tmp_path / "chromium") as opened:
        yield opened


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` of the module's own (integration tests; a session name per test)."""
    from _redis_support import running_redis

    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own, for tests that stop, restart or kill it."""
    from _redis_support import running_redis

    with running_redis(tmp_path / "redis") as server:
        yield server
