"""Server configuration, checked once before anything binds."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ._exceptions import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
KIB = 1024
STATIC_DIR = Path(__file__).parent / "static"


def is_loopback(host: str) -> bool:
    """True when ``host`` can only be reached from this machine.

    Names other than ``localhost`` may resolve anywhere, so they count as public.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    max_head_bytes: int = attrs.field(default=16 * KIB, validator=_positive)
    head_timeout: float = attrs.field(default=10.0, validator=_positive)
    max_message_bytes: int = attrs.field(default=64 * KIB, validator=_positive)
    ping_interval: float = attrs.field(default=20.0, validator=_positive)
    ping_timeout: float = attrs.field(default=20.0, validator=_positive)
    close_timeout: float = attrs.field(default=2.0, validator=_positive)
    subscription_buffer: int | None = None
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
