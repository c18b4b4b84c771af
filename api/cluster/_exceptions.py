"""Exceptions of cluster mode: one base, and what a caller can act on."""

from __future__ import annotations

from .._exceptions import ApiError


class ClusterError(ApiError):
    """Cluster mode went wrong: a bad URL or session name, or Redis said no."""


class RedisUnavailable(ClusterError):
    """Redis could not be reached or is loading: retry with backoff."""


class RedisAuthError(ClusterError):
    """Redis refused the credentials (WRONGPASS, NOAUTH, NOPERM) or the TLS set-up (an
    untrusted or misnamed certificate, a refused client certificate): retrying will not help."""


class ControlRefused(ClusterError):
    """The control script refused an operator's command (e.g. resume while over budget)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
