"""The Redis URL: ``redis://[user:password@]host:port/db`` or ``rediss://`` (TLS).

The password may come from ``RUNCAST_REDIS_PASSWORD`` when the URL has none. It
never appears in ``repr``, ``str`` or an error message: those show ``***``.

TLS options, spelled as redis-py spells them, follow ``?``: ``ssl_ca_certs`` (the CA
bundle that signed the server's certificate; default: the system's CAs, or
``RUNCAST_REDIS_CA_CERTS``), ``ssl_certfile`` and ``ssl_keyfile`` (a client
certificate for mutual TLS) and ``ssl_cert_reqs``, which may only say ``required``:
the server's certificate and name are always checked, never silently skipped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from ._exceptions import ClusterError

PASSWORD_ENV = "RUNCAST_REDIS_PASSWORD"
CA_CERTS_ENV = "RUNCAST_REDIS_CA_CERTS"
DEFAULT_PORT = 6379
_SCHEMES = ("redis", "rediss")
#: The TLS options a URL may carry, in the order ``str()`` shows them.
TLS_FILE_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = "ssl_cert_reqs"
_KNOWN_OPTIONS = (*TLS_FILE_OPTIONS, _CERT_REQS)


@attrs.frozen
class RedisTarget:
    """Where Redis is and how to log in; ``str()`` is the URL with the password hidden."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False
    #: TLS files (paths, checked to exist when parsed); shown by ``str()``: not secret.
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        login = ""
        if self.username is not None or self.password is not None:
            user = self.username or ""
            login = f"{user}:***@" if self.password is not None else f"{user}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{login}{host}:{self.port}/{self.db}{self._query()}"

    def _query(self) -> str:
        options = [
            f"{name}={quote(value, safe='/')}"
            for name in TLS_FILE_OPTIONS
            if (value := getattr(self, name)) is not None
        ]
        return "?" + "&".join(options) if options else ""

    def __repr__(self) -> str:
        return f"RedisTarget({str(self)!r})"


def parse_redis_url(url: str, env: Mapping[str, str] | None = None) -> RedisTarget:
    """Parse ``url``; ``env[RUNCAST_REDIS_PASSWORD]`` fills in a missing password and
    ``env[RUNCAST_REDIS_CA_CERTS]`` a missing ``ssl_ca_certs`` (rediss:// only).

    Raises ``ClusterError`` naming what is wrong (never showing the password).
    """
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ClusterError(
            f"Redis URL: expected redis://[user:password@]host:port/db or rediss://..., "
            f"got scheme {scheme.lower()!r}"
            if sep
            else "Redis URL: expected redis://[user:password@]host:port/db or rediss://..."
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        # urllib's message may quote the netloc (and so the password): do not use it.
        raise ClusterError("Redis URL: the port must be a number from 0 to 65535") from exc
    if not host:
        raise ClusterError("Redis URL: no host (expected redis://host:port/db)")
    if parts.fragment:
        raise ClusterError("Redis URL: a '#' fragment is not supported")
    tls = parts.scheme.lower() == "rediss"
    files = _tls_files(_parse_options(parts.query), tls=tls, env=env or {})
    return RedisTarget(
        host=host,
        port=DEFAULT_PORT if port is None else _check_port(port),
        db=_parse_db(parts.path),
        username=unquote(parts.username) if parts.username else None,
        password=_password(parts.password, env),
        tls=tls,
        ssl_ca_certs=files.ssl_ca_certs,
        ssl_certfile=files.ssl_certfile,
        ssl_keyfile=files.ssl_keyfile,
    )


def _check_port(port: int) -> int:
    if port == 0:
        raise ClusterError("Redis URL: port 0 is not a port Redis listens on")
    return port


def _parse_db(path: str) -> int:
    text = path.lstrip("/")
    if not text:
        return 0
    if not text.isdecimal() or "/" in text:
        raise ClusterError(f"Redis URL: the database must be a number, got {text!r}")
    return int(text)


def _password(in_url: str | None, env: Mapping[str, str] | None) -> str | None:
    if in_url:
        return unquote(in_url)
    from_env = (env or {}).get(PASSWORD_ENV)
    return from_env or None


def _parse_options(query: str) -> dict[str, str]:
    """The options after ``?``; unknown or repeated ones are refused by name.

    Values of unknown options are never quoted back: one might be a secret.
    """
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise ClusterError("Redis URL: options after '?' must be name=value&name=value") from exc
    names = [name for name, _value in pairs]
    unknown = sorted({name for name in names if name not in _KNOWN_OPTIONS})
    if unknown:
        raise ClusterError(
            f"Redis URL: unknown option(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(_KNOWN_OPTIONS)})"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ClusterError(f"Redis URL: option(s) given twice: {', '.join(map(repr, repeated))}")
    options = dict(pairs)
    reqs = options.get(_CERT_REQS)
    if reqs is not None and reqs.lower() != "required":
        raise ClusterError(
            f"Redis URL: {_CERT_REQS}={reqs!r} is refused: runcast always checks the "
            "server's certificate (only 'required' is accepted); name the CA that signed "
            "it with ssl_ca_certs=PATH"
        )
    return options


@attrs.frozen
class _TlsFiles:
    ssl_ca_certs: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None


def _tls_files(options: dict[str, str], *, tls: bool, env: Mapping[str, str]) -> _TlsFiles:
    """The TLS files of the URL (the CA bundle may come from ``env``), each checked."""
    if options and not tls:
        raise ClusterError(
            f"Redis URL: TLS option(s) {', '.join(options)} need rediss:// "
            "(this URL is redis://, without TLS)"
        )
    for name in TLS_FILE_OPTIONS:
        if name in options:
            _check_file(f"Redis URL: option {name}", options[name])
    ca_certs = options.get("ssl_ca_certs")
    from_env = env.get(CA_CERTS_ENV)
    if ca_certs is None and from_env:
        if not tls:
            raise ClusterError(
                f"{CA_CERTS_ENV} is set but the Redis URL is redis:// (without TLS): "
                "use rediss://, or unset it"
            )
        ca_certs = _check_file(CA_CERTS_ENV, from_env)
    if "ssl_keyfile" in options and "ssl_certfile" not in options:
        raise ClusterError("Redis URL: ssl_keyfile needs ssl_certfile (the client certificate)")
    return _TlsFiles(ca_certs, options.get("ssl_certfile"), options.get("ssl_keyfile"))


def _check_file(label: str, path: str) -> str:
    if not path:
        raise ClusterError(f"{label} is empty: expected the path of a PEM file")
    if not Path(path).is_file():
        raise ClusterError(f"{label}: no such file: {path!r}")
    if not os.access(path, os.R_OK):
        raise ClusterError(f"{label}: file not readable: {path!r}")
    return path
