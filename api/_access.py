"""Who may do what: bearer tokens, roles and the browser ``Origin`` check."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from ._config import ServerConfig
from ._exceptions import HttpError

PUBLIC_PATHS = frozenset({"/healthz"})


class Role(enum.Enum):
    """What a connection may do: operators send commands, viewers only read."""

    OPERATOR = "operator"
    VIEWER = "viewer"


def _matches_any(candidate: str, tokens: Iterable[str]) -> bool:
    # Compare against every token so the time taken does not reveal which one matched.
    found = False
    for token in tokens:
        found |= hmac.compare_digest(candidate.encode(), token.encode())
    return found


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)


def _origin_authority(origin: str) -> str | None:
    """``host:port`` of an Origin header, lower-cased, default port filled in."""
    try:
        parts = urlsplit(origin)
        port = parts.port or _default_port(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}".lower()


def _host_authority(host_header: str, scheme: str = "http") -> str | None:
    return _origin_authority(f"{scheme}://{host_header}")


@attrs.frozen
class AccessPolicy:
    """Decides, from a request's headers and query, whether it may proceed and as whom."""

    config: ServerConfig

    def check(self, path: str, headers: Mapping[str, str], query_token: str | None) -> Role:
        """The caller's role; raises ``HttpError`` 401 or 403 when refused."""
        self.check_origin(headers)
        if path in PUBLIC_PATHS:
            return Role.VIEWER
        return self.authenticate(headers, query_token)

    def authenticate(self, headers: Mapping[str, str], query_token: str | None) -> Role:
        if not self.config.requires_token:
            return Role.OPERATOR
        token = self._presented_token(headers, query_token)
        if token is None:
            raise HttpError(401, "a token is required", headers=self._challenge())
        if _matches_any(token, self.config.auth_tokens):
            return Role.OPERATOR
        if _matches_any(token, self.config.viewer_tokens):
            return Role.VIEWER
        raise HttpError(401, "the token is not valid", headers=self._challenge())

    @staticmethod
    def _challenge() -> tuple[tuple[str, str], ...]:
        return (("WWW-Authenticate", 'Bearer realm="runcast"'),)

    @staticmethod
    def _presented_token(headers: Mapping[str, str], query_token: str | None) -> str | None:
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise HttpError(
                    401,
                    "the Authorization header must be 'Bearer <token>'",
                    headers=AccessPolicy._challenge(),
                )
            return credentials.strip()
        return query_token

    def check_origin(self, headers: Mapping[str, str]) -> None:
        """Refuse (403) a browser request from a page the server did not serve.

        Requests without ``Origin`` come from non-browser clients and pass.
        """
        origin = headers.get("origin")
        if origin is None:
            return
        allowed = self.config.allow_origins
        if "*" in allowed or origin.rstrip("/") in {a.rstrip("/") for a in allowed}:
            return
        host = headers.get("host")
        origin_authority = _origin_authority(origin)
        if host is not None and origin_authority is not None:
            scheme = urlsplit(origin).scheme
            if _host_authority(host, "https" if scheme in ("https", "wss") else "http") == (
                origin_authority
            ):
                return
        raise HttpError(403, f"origin {origin!r} is not allowed (see --allow-origin)")
