"""Exceptions of the api package."""

from __future__ import annotations

from events import RuncastError


class ApiError(RuncastError):
    """Base of the api package's errors."""


class ConfigError(ApiError, ValueError):
    """The server or a command was configured in a way it refuses to run with."""


class HttpError(ApiError):
    """A request that gets an HTTP error response; ``status`` is the code to send."""

    def __init__(self, status: int, message: str, *, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class MessageError(ApiError, ValueError):
    """A WebSocket message the server cannot act on; the text is sent back as the error."""


class ListenError(ApiError, OSError):
    """The server could not bind its address (in use, not permitted, unknown host)."""
