"""TLS arguments for redis-py (checks always on) and which TLS failures are refusals
(reported at once) rather than outages (retried)."""

from __future__ import annotations

import ssl

import redis.exceptions

from api.cluster import RedisTarget
from api.cluster._tls import tls_options, tls_outage_hint, tls_refusal

TARGET = RedisTarget("redis.internal", 6380, tls=True, ssl_ca_certs="/etc/runcast/ca.pem")


def _raised_from(cause: BaseException) -> redis.exceptions.ConnectionError:
    """A redis-py ConnectionError the way redis-py raises it: ``from`` the ssl error."""
    try:
        raise redis.exceptions.ConnectionError("Error connecting") from cause
    except redis.exceptions.ConnectionError as exc:
        return exc


def _ssl_error(reason: str, cls: type[ssl.SSLError] = ssl.SSLError) -> ssl.SSLError:
    error = cls(1, f"[SSL: {reason}] {reason.lower()}")
    error.reason = reason
    return error


def test_tls_options_always_check_the_certificate_and_the_host() -> None:
    options = tls_options(TARGET)
    assert options["ssl"] is True
    assert options["ssl_cert_reqs"] == "required"
    assert options["ssl_check_hostname"] is True
    assert options["ssl_ca_certs"] == "/etc/runcast/ca.pem"
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == (None, None)


def test_a_plain_target_has_no_tls() -> None:
    assert tls_options(RedisTarget("h")) == {"ssl": False}


def test_an_untrusted_certificate_is_a_refusal_naming_the_ca() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    text = tls_refusal(_raised_from(cause), TARGET)
    assert text is not None
    assert "not trusted (unable to get local issuer certificate;" in text
    assert "checked against /etc/runcast/ca.pem" in text
    assert "issued for 'redis.internal'" in text


def test_a_refused_client_certificate_is_a_refusal() -> None:
    cause = _ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED")
    text = tls_refusal(_raised_from(cause), TARGET)
    assert text is not None
    assert "refused this client's certificate" in text
    assert "certificate: none given" in text


def test_a_connection_cut_short_is_an_outage_with_a_hint() -> None:
    error = _raised_from(_ssl_error("UNEXPECTED_EOF_WHILE_READING", ssl.SSLEOFError))
    assert tls_refusal(error, TARGET) is None  # retried: Redis may be restarting
    assert "ssl_certfile=PATH" in tls_outage_hint(error, TARGET)
    with_cert = RedisTarget("h", tls=True, ssl_certfile="/c.pem")
    assert tls_outage_hint(error, with_cert) == ""


def test_errors_without_tls_in_them_are_left_alone() -> None:
    error = _raised_from(ConnectionRefusedError(111, "Connection refused"))
    assert tls_refusal(error, TARGET) is None
    assert tls_outage_hint(error, TARGET) == ""
