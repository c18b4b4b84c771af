"""Exceptions of the terminal clients (``status``, ``watch``, ...)."""

from __future__ import annotations

from .._exceptions import ApiError

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
