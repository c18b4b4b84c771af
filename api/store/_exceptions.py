"""Exceptions of the SQLite session store."""

from __future__ import annotations

from .._exceptions import ApiError


class StoreError(ApiError):
    """The store could not be opened, migrated or written."""


class StoreOverloadedError(StoreError):
    """More records are waiting to be written than the store's bound allows."""


class UnknownSessionError(StoreError, LookupError):
    """No session with that id (or prefix) is in the store."""


class SessionLeasedError(StoreError):
    """Another live process runs the session (holds its lease); this one leaves it alone."""


class LeaseLostError(StoreError):
    """Another process took this run's session over; this run must write nothing more."""
