"""parse_redis_url: schemes, logins, databases, the password's environment fallback,
TLS options (CA bundle, client certificate; checks never turned off), and errors that
name what is wrong without ever showing the password."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from api.cluster import CA_CERTS_ENV, PASSWORD_ENV, ClusterError, RedisTarget, parse_redis_url

SECRET = "s3cr3t-pa55"


def test_a_plain_url_gives_host_port_and_db() -> None:
    target = parse_redis_url("redis://cache.internal:6380/2")
    assert target == RedisTarget("cache.internal", 6380, 2)
    assert not target.tls


def test_defaults_are_port_6379_and_db_0() -> None:
    assert parse_redis_url("redis://localhost") == RedisTarget("localhost", 6379, 0)


def test_rediss_means_tls() -> None:
    assert parse_redis_url("rediss://redis.example.com:6380/0").tls


def test_user_and_password_are_read_and_unquoted() -> None:
    target = parse_redis_url("redis://runcast:p%40ss%3Aword@127.0.0.1:7000/1")
    assert (target.username, target.password) == ("runcast", "p@ss:word")


def test_a_password_without_a_user_is_the_default_user() -> None:
    target = parse_redis_url(f"redis://:{SECRET}@127.0.0.1:7000")
    assert (target.username, target.password) == (None, SECRET)


def test_the_environment_fills_a_missing_password() -> None:
    target = parse_redis_url("redis://127.0.0.1:7000", {PASSWORD_ENV: SECRET})
    assert target.password == SECRET


def test_the_url_password_beats_the_environment() -> None:
    target = parse_redis_url("redis://:inurl@127.0.0.1", {PASSWORD_ENV: SECRET})
    assert target.password == "inurl"


def test_an_empty_environment_password_is_no_password() -> None:
    assert parse_redis_url("redis://127.0.0.1", {PASSWORD_ENV: ""}).password is None


def test_repr_and_str_hide_the_password() -> None:
    target = parse_redis_url(f"rediss://ops:{SECRET}@10.0.0.5:6390/3")
    assert str(target) == "rediss://ops:***@10.0.0.5:6390/3"
    assert SECRET not in repr(target)
    assert SECRET not in str(target)
    assert SECRET not in f"{target!r} {[target]}"


def test_an_ipv6_host_is_bracketed_in_str() -> None:
    assert str(parse_redis_url("redis://[::1]:6379")) == "redis://[::1]:6379/0"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:6379", "scheme 'http'"),
        ("127.0.0.1:6379", "expected redis://"),
        ("redis://", "no host"),
        (f"redis://:{SECRET}@host:notaport", "port must be a number"),
        (f"redis://:{SECRET}@host:99999", "port must be a number"),
        ("redis://host:0", "port 0"),
        ("redis://host:6379/zero", "database must be a number, got 'zero'"),
        ("redis://host:6379/1/2", "database must be a number"),
        (f"rediss://:{SECRET}@host/0#part", "'#' fragment is not supported"),
        (f"rediss://:{SECRET}@host/0?ssl_ca_certs", "name=value&name=value"),
    ],
)
def test_a_bad_url_says_what_is_wrong_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ClusterError, match="Redis URL") as raised:
        parse_redis_url(url)
    assert says in str(raised.value)
    assert SECRET not in str(raised.value)


# -- TLS options -----------------------------------------------------------------------


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    """Files where the options point (their content is the TLS tests' business)."""
    paths = {}
    for name in ("ca.pem", "client.pem", "client.key", "other ca.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
        paths[name] = str(tmp_path / name)
    return paths


def test_the_ca_bundle_and_client_certificate_come_from_the_query(
    pem_files: dict[str, str],
) -> None:
    ca, cert, key = pem_files["ca.pem"], pem_files["client.pem"], pem_files["client.key"]
    target = parse_redis_url(
        f"rediss://ops:{SECRET}@h:6380/1?ssl_ca_certs={ca}&ssl_certfile={cert}&ssl_keyfile={key}"
    )
    assert (target.ssl_ca_certs, target.ssl_certfile, target.ssl_keyfile) == (ca, cert, key)
    assert target.tls


def test_str_shows_the_tls_files_but_not_the_password_and_parses_back(
    pem_files: dict[str, str],
) -> None:
    ca = pem_files["other ca.pem"]  # a space: quoted in the URL
    target = parse_redis_url(
        f"rediss://ops:{SECRET}@h:6380/1?ssl_ca_certs={ca.replace(' ', '%20')}"
        f"&ssl_certfile={pem_files['client.pem']}"
    )
    text = str(target)
    assert text == (
        f"rediss://ops:***@h:6380/1?ssl_ca_certs={ca.replace(' ', '%20')}"
        f"&ssl_certfile={pem_files['client.pem']}"
    )
    assert SECRET not in repr(target)
    again = parse_redis_url(text.replace("***", SECRET))
    assert again == target


def test_ssl_cert_reqs_required_is_accepted_and_changes_nothing(
    pem_files: dict[str, str],
) -> None:
    ca = pem_files["ca.pem"]
    target = parse_redis_url(f"rediss://h/0?ssl_cert_reqs=required&ssl_ca_certs={ca}")
    assert target == parse_redis_url(f"rediss://h/0?ssl_ca_certs={ca}")


@pytest.mark.parametrize("value", ["none", "optional", "CERT_NONE", ""])
def test_turning_certificate_checks_off_is_refused(value: str) -> None:
    with pytest.raises(ClusterError) as raised:
        parse_redis_url(f"rediss://:{SECRET}@h/0?ssl_cert_reqs={value}")
    text = str(raised.value)
    assert f"ssl_cert_reqs={value!r} is refused" in text
    assert "only 'required'" in text
    assert SECRET not in text


def test_unknown_options_are_named_without_their_values() -> None:
    with pytest.raises(ClusterError) as raised:
        parse_redis_url(f"rediss://h/0?password={SECRET}&ssl_check_hostname=false&socket=1")
    text = str(raised.value)
    assert "unknown option(s) 'password', 'socket', 'ssl_check_hostname'" in text
    assert "known: ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs" in text
    assert SECRET not in text
    assert "false" not in text


def test_an_option_given_twice_is_refused(pem_files: dict[str, str]) -> None:
    ca = pem_files["ca.pem"]
    with pytest.raises(ClusterError, match="given twice: 'ssl_ca_certs'"):
        parse_redis_url(f"rediss://h/0?ssl_ca_certs={ca}&ssl_ca_certs={ca}")


@pytest.mark.parametrize("option", ["ssl_ca_certs", "ssl_certfile", "ssl_keyfile"])
def test_a_missing_file_names_the_option_and_the_path(
    tmp_path: Path, pem_files: dict[str, str], option: str
) -> None:
    missing = tmp_path / "nowhere" / "x.pem"
    others = {"ssl_certfile": pem_files["client.pem"]} if option == "ssl_keyfile" else {}
    query = urlencode({option: str(missing), **others})
    with pytest.raises(ClusterError) as raised:
        parse_redis_url(f"rediss://:{SECRET}@h/0?{query}")
    assert str(raised.value) == f"Redis URL: option {option}: no such file: {str(missing)!r}"


def test_a_directory_is_not_a_ca_bundle(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="option ssl_ca_certs: no such file"):
        parse_redis_url(f"rediss://h/0?ssl_ca_certs={tmp_path}")


def test_an_empty_path_says_so() -> None:
    with pytest.raises(ClusterError, match="option ssl_certfile is empty"):
        parse_redis_url("rediss://h/0?ssl_certfile=")


def test_a_key_without_its_certificate_is_refused(pem_files: dict[str, str]) -> None:
    with pytest.raises(ClusterError, match="ssl_keyfile needs ssl_certfile"):
        parse_redis_url(f"rediss://h/0?ssl_keyfile={pem_files['client.key']}")


@pytest.mark.parametrize("option", ["ssl_ca_certs", "ssl_certfile", "ssl_cert_reqs"])
def test_tls_options_on_a_plain_url_are_refused(pem_files: dict[str, str], option: str) -> None:
    value = "required" if option == "ssl_cert_reqs" else pem_files["ca.pem"]
    with pytest.raises(ClusterError) as raised:
        parse_redis_url(f"redis://:{SECRET}@h/0?{option}={value}")
    assert f"TLS option(s) {option} need rediss://" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_the_environment_names_the_ca_bundle(pem_files: dict[str, str]) -> None:
    target = parse_redis_url("rediss://h/0", {CA_CERTS_ENV: pem_files["ca.pem"]})
    assert target.ssl_ca_certs == pem_files["ca.pem"]
    assert str(target) == f"rediss://h:6379/0?ssl_ca_certs={pem_files['ca.pem']}"


def test_the_url_ca_bundle_beats_the_environment(pem_files: dict[str, str]) -> None:
    env = {CA_CERTS_ENV: pem_files["other ca.pem"]}
    target = parse_redis_url(f"rediss://h/0?ssl_ca_certs={pem_files['ca.pem']}", env)
    assert target.ssl_ca_certs == pem_files["ca.pem"]


def test_an_empty_environment_ca_bundle_is_the_system_cas() -> None:
    assert parse_redis_url("rediss://h/0", {CA_CERTS_ENV: ""}).ssl_ca_certs is None


def test_a_missing_environment_ca_bundle_names_the_variable(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.pem")
    with pytest.raises(ClusterError) as raised:
        parse_redis_url("rediss://h/0", {CA_CERTS_ENV: missing})
    assert str(raised.value) == f"{CA_CERTS_ENV}: no such file: {missing!r}"


def test_an_environment_ca_bundle_with_a_plain_url_is_refused(pem_files: dict[str, str]) -> None:
    # Never silently without TLS: the operator who named a CA expects TLS.
    with pytest.raises(ClusterError, match=f"{CA_CERTS_ENV} is set but the Redis URL is redis://"):
        parse_redis_url("redis://h/0", {CA_CERTS_ENV: pem_files["ca.pem"]})
