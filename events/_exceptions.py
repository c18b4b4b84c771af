"""Exceptions of the events package, and the project's base error."""

from __future__ import annotations


class RuncastError(Exception):
    """Base of every error runcast raises on purpose."""


class EventValidationError(RuncastError, ValueError):
    """An event was built with a value its type does not allow."""


class EventDecodeError(RuncastError, ValueError):
    """A wire message could not be decoded into an event; the message names the field."""
