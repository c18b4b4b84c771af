"""Errors of the durable store."""

from __future__ import annotations

from events import RuncastError


class StoreError(RuncastError):
    """The store could not be opened, migrated or written."""


class StoreOverloadedError(StoreError):
    """More records are waiting to be written than the store's bound allows."""


class UnknownSessionError(StoreError, LookupError):
    """No session with that id (or prefix) is in the store."""
