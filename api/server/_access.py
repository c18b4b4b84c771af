"""Who may do what: the ``Host`` check, bearer tokens, roles and the browser ``Origin`` check."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from ._config import ServerConfig, is_loopback, split_authority
from ._exceptions import HttpError

#: Open without a token: a probe, and the icon browsers ask for without the page's ?token=.
PUBLIC_PATHS = frozenset({"/healthz", "/favicon.ico"})


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


def _show(text: str) -> str:
    """``text`` quoted for a message, cut short: it is the client's, of any length."""
    return repr(text if len(text) <= 100 else text[:97] + "...")


def _name(host: str) -> str:
    return host.lower().removesuffix(".")


def _is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def _allowed_hosts(config: ServerConfig, port: int | None) -> tuple[tuple[str, int | None], ...]:
    """``(name, port)`` pairs served besides loopback names; port None: any port.

    ``--allow-host`` entries, the host of each ``--allow-origin`` (a page served
    through a proxy under that name is same-origin with it) and a named bind address.
    """
    allowed: list[tuple[str, int | None]] = []
    for entry in config.allow_hosts:
        authority = split_authority(entry) if entry != "*" else None
        if authority is not None:
            allowed.append((_name(authority[0]), authority[1]))
    for origin in config.allow_origins:
        hostname = urlsplit(origin).hostname if origin != "*" else None
        if hostname:
            allowed.append((_name(hostname), None))
    if not _is_wildcard(config.host) and not is_loopback(config.host):
        allowed.append((_name(config.host.strip("[]")), port or config.port or None))
    return tuple(allowed)


def _same_port(allowed: int | None, given: int | None) -> bool:
    # No port in Host means the scheme's default, which the Host alone does not say.
    return allowed is None or allowed == given or (given is None and allowed in (80, 443))


@attrs.frozen
class AccessPolicy:
    """Decides, from a request's headers and query, whether it may proceed and as whom.

    ``port`` is the port the server is bound to (``config.port`` may be 0).
    """

    config: ServerConfig
    port: int | None = None
    _allowed: tuple[tuple[str, int | None], ...] = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: _allowed_hosts(self.config, self.port), takes_self=True),
    )

    def check(self, path: str, headers: Mapping[str, str], query_token: str | None) -> Role:
        """The caller's role; raises ``HttpError`` 421, 401 or 403 when refused."""
        self.check_host(headers)
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

    @property
    def checks_host(self) -> bool:
        """Without a token always (the token is what stops a rebinding page otherwise);
        with one, only when ``--allow-host`` names the hosts; never with ``*``."""
        hosts = self.config.allow_hosts
        return "*" not in hosts and (not self.config.requires_token or bool(hosts))

    def check_host(self, headers: Mapping[str, str]) -> None:
        """Refuse (421) a request whose ``Host`` names neither loopback nor an allowed host.

        A DNS-rebinding page reaches a local server under the page's own name
        (``Host: attacker.example:PORT``), and is same-origin with it, so the
        Origin check alone lets it in; the Host header is what gives it away.
        A request without ``Host`` (HTTP/1.0) passes: browsers always send one.
        """
        host = headers.get("host")
        if host is None or not self.checks_host:
            return
        authority = split_authority(host.strip())
        if authority is not None and self._serves(*authority):
            return
        raise HttpError(
            421,
            f"Host {_show(host)} is not a name this server answers to: localhost or a "
            f"loopback address (port {self.bound_port}), or a name given with --allow-host",
        )

    @property
    def bound_port(self) -> int:
        return self.config.port if self.port is None else self.port

    def _serves(self, host: str, port: int | None) -> bool:
        if is_loopback(host) and port in (None, self.bound_port):
            return True
        name = _name(host)
        return any(
            name == allowed and _same_port(allowed_port, port)
            for allowed, allowed_port in self._allowed
        )

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
