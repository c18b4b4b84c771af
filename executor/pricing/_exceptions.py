"""Exceptions of pricing; each one is an ``ExecutorError``."""

from __future__ import annotations

from .._exceptions import ExecutorError


class PriceTableError(ExecutorError, ValueError):
    """A price table file could not be read; the message names file, model and field."""
