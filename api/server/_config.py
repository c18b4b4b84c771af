"""Server configuration, checked once before anything binds."""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from .._defaults import DEFAULT_HOST, DEFAULT_PORT
from ._exceptions import ConfigError

KIB = 1024
STATIC_DIR = Path(__file__).parent / "static"
#: Plain HTTP requests answered at once; more get 503 (WebSockets are not counted).
DEFAULT_MAX_HTTP_REQUESTS = 32

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_loopback(host: str) -> bool:
    """True when ``host`` can only be reached from this machine.

    Every spelling the resolver reads as a loopback address counts (``127.1``,
    ``0x7f.1``, ``2130706433``, ``::ffff:127.0.0.1``); names other than
    ``localhost`` may resolve anywhere, so they count as public.
    """
    if host.lower() in ("localhost", "localhost."):
        return True
    address = _ip_address(host.strip("[]"))
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@functools.lru_cache(maxsize=256)
def _ip_address(text: str) -> IpAddress | None:
    """``text`` as an address the way the resolver reads it (no lookup), or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    # The short IPv4 forms (127.1, 0x7f.1, 017700000001) that inet_aton accepts:
    # binding to one, or a browser's Host, means that address. Numeric only: no DNS.
    try:
        infos = socket.getaddrinfo(text, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(infos[0][4][0]) if infos else None


def split_authority(authority: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` value or ``--allow-host`` entry (name lower-cased,
    port None when absent); None when it is not ``name[:port]``."""
    try:
        parts = urlsplit(f"http://{authority}")
        port = parts.port
    except ValueError:
        return None
    name = parts.hostname
    if not name or parts.netloc.rpartition("@")[0] or parts.path or parts.query or parts.fragment:
        return None
    return name, port


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{attribute.name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{attribute.name} must be > 0, got {value!r}")


def _port(_inst: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"port must be an int in 0..65535, got {value!r}")


def _tokens(_inst: object, attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(t, str) and t for t in value):
        raise ConfigError(f"{attribute.name} must be non-empty strings")


def _origins(_inst: object, _attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
    if not isinstance(value, tuple):
        raise ConfigError("allow_origins must be a tuple of origins")
    for origin in value:
        if origin != "*" and "://" not in origin:
            raise ConfigError(
                f"allow_origins: {origin!r} is not an origin like 'https://host:port' (or '*')"
            )


def _hosts(_inst: object, _attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
    if not isinstance(value, tuple):
        raise ConfigError("allow_hosts must be a tuple of host names")
    for host in value:
        if host != "*" and (not isinstance(host, str) or split_authority(host) is None):
            raise ConfigError(
                f"allow_hosts: {host!r} is not a host name like 'runcast.example.com' or "
                "'runcast.example.com:8443' (or '*')"
            )


def _positive_int(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConfigError(f"expected a list of strings, got the single string {values!r}")
    return tuple(values)


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Where and how ``serve_runcast`` listens.

    Binding to a non-loopback address without an operator token is refused:
    anyone who can reach the port could otherwise pause or cancel the run.
    """

    host: str = DEFAULT_HOST
    port: int = attrs.field(default=DEFAULT_PORT, validator=_port)
    auth_tokens: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=_tokens)
    viewer_tokens: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple, validator=_tokens
    )
    allow_origins: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple, validator=_origins
    )
    #: ``Host`` names served besides loopback ones (see ``AccessPolicy.check_host``).
    allow_hosts: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=_hosts)
    max_http_requests: int = attrs.field(default=DEFAULT_MAX_HTTP_REQUESTS, validator=_positive_int)
    max_head_bytes: int = attrs.field(default=16 * KIB, validator=_positive)
    head_timeout: float = attrs.field(default=10.0, validator=_positive)
    max_message_bytes: int = attrs.field(default=64 * KIB, validator=_positive)
    ping_interval: float = attrs.field(default=20.0, validator=_positive)
    ping_timeout: float = attrs.field(default=20.0, validator=_positive)
    close_timeout: float = attrs.field(default=2.0, validator=_positive)
    subscription_buffer: int | None = None
    #: Output lines kept per task for ``/api/tasks/ID/output``, and characters kept
    #: over all tasks (the oldest lines go first); what is cut is counted and shown.
    output_lines_per_task: int = attrs.field(default=1000, validator=_positive_int)
    output_max_chars: int = attrs.field(default=16_000_000, validator=_positive_int)
    static_dir: Path = attrs.field(default=STATIC_DIR, converter=Path)

    def __attrs_post_init__(self) -> None:
        if not self.host:
            raise ConfigError("host must not be empty (use 0.0.0.0 to listen everywhere)")
        if not is_loopback(self.host) and not self.auth_tokens:
            raise ConfigError(
                f"refusing to listen on {self.host}: it is not a loopback address, so anyone "
                "who reaches it could control the run; set --auth-token or RUNCAST_AUTH_TOKEN"
            )
        if self.viewer_tokens and not self.auth_tokens:
            raise ConfigError(
                "viewer tokens need an operator token too (--auth-token): with only viewer "
                "tokens nobody could send commands"
            )
        if set(self.auth_tokens) & set(self.viewer_tokens):
            raise ConfigError("a token cannot be both an operator and a viewer token")
        if self.subscription_buffer is not None and self.subscription_buffer < 1:
            raise ConfigError("subscription_buffer must be >= 1")

    @property
    def requires_token(self) -> bool:
        return bool(self.auth_tokens or self.viewer_tokens)
