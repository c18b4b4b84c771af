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


EXIT_OK = 0
EXIT_ERROR_REPLY = 1
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4


class ClientError(ApiError):
    """A client could not do what it was asked; ``exit_code`` is the CLI's."""

    exit_code = EXIT_ERROR_REPLY


class ServerUnreachableError(ClientError):
    """No runcast server answered at the URL (refused, timed out, dropped)."""

    exit_code = EXIT_UNREACHABLE


class AuthRefusedError(ClientError):
    """The server refused the token (HTTP 401/403 at the handshake)."""

    exit_code = EXIT_REFUSED


class ErrorReplyError(ClientError):
    """The server answered with an ``error`` frame or an error status."""


class ProtocolError(ClientError):
    """The server sent something the protocol does not allow."""
