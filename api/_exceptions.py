"""Exceptions of the api package: one base, and one subclass per subpackage."""

from __future__ import annotations

from events import RuncastError


class ApiError(RuncastError):
    """Base of the api package's errors."""
