"""Exceptions of the broadcaster package."""

from __future__ import annotations

from events import RuncastError


class BroadcasterError(RuncastError):
    """Base of the broadcaster's errors."""


class BroadcasterConfigError(BroadcasterError, ValueError):
    """A broadcaster or metrics option has a value it cannot take; the message names it."""


class RestoreError(BroadcasterError):
    """Previous session totals could not be restored; the message says why."""
