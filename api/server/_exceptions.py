"""Exceptions of the HTTP/WebSocket server and its configuration."""

from __future__ import annotations

from .._exceptions import ApiError


class ServerError(ApiError):
    """Base of the server's errors."""


class ConfigError(ServerError, ValueError):
    """The server or a command was configured in a way it refuses to run with."""


class HttpError(ServerError):
    """A request that gets an HTTP error response; ``status`` is the code to send."""

    def __init__(self, status: int, message: str, *, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class MessageError(ServerError, ValueError):
    """A WebSocket message the server cannot act on; the text is sent back as the error."""


class ListenError(ServerError, OSError):
    """The server could not bind its address (in use, not permitted, unknown host)."""
