"""Calling Redis again while it is unreachable, with capped exponential backoff."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
import trio

from ._exceptions import RedisUnavailable

T = TypeVar("T")
log = structlog.get_logger("runcast.cluster")

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0


def next_delay(delay: float) -> float:
    """The backoff after ``delay``: doubled, at most ``BACKOFF_MAX``."""
    return min(delay * 2, BACKOFF_MAX)


async def retry_unavailable(call: Callable[..., Awaitable[T]], *args: object) -> T:
    """``await call(*args)``, again after 0.1 s, 0.2 s ... 5 s while Redis is unavailable.

    Other errors (credentials refused, a script error) are raised at once.
    """
    delay = BACKOFF_FIRST
    while True:
        try:
            return await call(*args)
        except RedisUnavailable as exc:
            log.warning("Redis unavailable: retrying", error=str(exc), retry_in=delay)
            await trio.sleep(delay)
            delay = next_delay(delay)
