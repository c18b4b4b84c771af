"""TLS for ``rediss://``: redis-py's arguments, and which TLS failures retrying cannot fix.

The server's certificate and host name are always checked. A certificate that is
not trusted, a client certificate the server refuses (or lacks), a key that does not
match its certificate: these are configuration, not an outage, so they are reported
at once (``RedisAuthError``: exit 2 at start) instead of retried like a Redis that is
down. A TLS connection cut short (EOF, reset) stays an outage: Redis may be restarting.
"""

from __future__ import annotations

import ssl
from typing import Any

from ._url import CA_CERTS_ENV, RedisTarget

#: Failures of a connection, not of the configuration: the callers retry these.
_TRANSIENT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)
#: OpenSSL reasons meaning the server refused this client's certificate (or its absence).
_CLIENT_CERT_REFUSED = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "EXPIRED")


def tls_options(target: RedisTarget) -> dict[str, Any]:
    """redis-py's TLS arguments for ``target``; checks spelled out, not left to defaults."""
    if not target.tls:
        return {"ssl": False}
    return {
        "ssl": True,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": target.ssl_ca_certs,
        "ssl_certfile": target.ssl_certfile,
        "ssl_keyfile": target.ssl_keyfile,
    }


def tls_refusal(exc: BaseException, target: RedisTarget) -> str | None:
    """What is wrong when ``exc`` (or what caused it) is a TLS failure retrying cannot
    fix; None when it is not one."""
    cause = _ssl_cause(exc)
    if cause is None or isinstance(cause, _TRANSIENT):
        return None
    if isinstance(cause, ssl.SSLCertVerificationError):
        ca = target.ssl_ca_certs or "the system's CAs"
        return (
            f"TLS: the server's certificate is not trusted ({cause.verify_message}; "
            f"checked against {ca}): name the CA that signed it with ?ssl_ca_certs=PATH "
            f"or {CA_CERTS_ENV}, and make sure it is issued for {target.host!r}"
        )
    reason = str(cause.reason or "")
    if any(word in reason for word in _CLIENT_CERT_REFUSED):
        given = target.ssl_certfile or "none given"
        return (
            f"TLS: the server refused this client's certificate ({reason}; certificate: "
            f"{given}): give one its CA signed with ?ssl_certfile=PATH&ssl_keyfile=PATH"
        )
    return f"TLS failed ({cause})"


def tls_outage_hint(exc: BaseException, target: RedisTarget) -> str:
    """A hint for a TLS connection cut short (retried: Redis may be restarting), when
    the cause may rather be a client certificate the server wants and did not get:
    with TLS 1.3 its refusal can arrive after our first write, as a bare EOF."""
    if target.ssl_certfile is None and isinstance(_ssl_cause(exc), ssl.SSLEOFError):
        return (
            "; if the server asks for client certificates (tls-auth-clients), give one "
            "with ?ssl_certfile=PATH&ssl_keyfile=PATH"
        )
    return ""


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
