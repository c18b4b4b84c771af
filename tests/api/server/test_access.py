"""Server configuration checks, tokens, roles and the Origin rule."""

from __future__ import annotations

import attrs
import pytest

from api import AccessPolicy, ConfigError, HttpError, Role, ServerConfig, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
        # Spellings the resolver reads as 127.0.0.1 (issue 17: 127.1 was refused).
        ("127.1", True),
        ("127.0.1", True),
        ("0x7f.1", True),
        ("0177.1", True),
        ("2130706433", True),
        ("0x7F000001", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("0:0:0:0:0:0:0:1", True),
        ("::ffff:127.0.0.1", True),
        ("[::ffff:127.0.0.1]", True),
        # Look alike, but are not loopback (or not addresses at all).
        ("10.1", False),
        ("0x0a.1", False),
        ("::ffff:10.0.0.1", False),
        ("127.0.0.1 evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("1.2.3.4.5", False),
        ("localhost.evil.example", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_short_loopback_spelling_binds_without_a_token() -> None:
    assert ServerConfig(host="127.1").host == "127.1"


def test_public_bind_without_token_is_refused_saying_why() -> None:
    with pytest.raises(ConfigError, match=r"0\.0\.0\.0.*not a loopback.*--auth-token"):
        ServerConfig(host="0.0.0.0")


def test_public_bind_with_token_is_accepted() -> None:
    assert ServerConfig(host="0.0.0.0", auth_tokens=("s3cret",)).requires_token


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"viewer_tokens": ("v",)}, "viewer tokens need an operator token"),
        ({"auth_tokens": ("same",), "viewer_tokens": ("same",)}, "both"),
        ({"auth_tokens": ("",)}, "non-empty"),
        ({"auth_tokens": "abc"}, "single string"),
        ({"port": 70000}, "port"),
        ({"head_timeout": 0}, "head_timeout"),
        ({"allow_origins": ("example.com",)}, "not an origin"),
        ({"host": ""}, "host must not be empty"),
        ({"subscription_buffer": 0}, "subscription_buffer"),
        ({"allow_hosts": ("http://x.example",)}, "not a host name"),
        ({"allow_hosts": ("x.example:99999",)}, "not a host name"),
        ({"allow_hosts": ("user@x.example",)}, "not a host name"),
        ({"allow_hosts": ("x.example/path",)}, "not a host name"),
        ({"allow_hosts": "x.example"}, "single string"),
        ({"max_http_requests": 0}, "max_http_requests must be an int >= 1"),
        ({"max_http_requests": 2.5}, "max_http_requests must be an int >= 1"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        ServerConfig(**kwargs)  # type: ignore[arg-type]


POLICY = AccessPolicy(ServerConfig(auth_tokens=("op-token",), viewer_tokens=("view-token",)))
OPEN = AccessPolicy(ServerConfig())


def test_without_tokens_everyone_is_an_operator() -> None:
    assert OPEN.check("/api/tasks", {}, None) is Role.OPERATOR


def test_bearer_header_and_query_token_give_roles() -> None:
    assert POLICY.check("/ws", {"authorization": "Bearer op-token"}, None) is Role.OPERATOR
    assert POLICY.check("/ws", {"authorization": "bearer  view-token "}, None) is Role.VIEWER
    assert POLICY.check("/ws", {}, "op-token") is Role.OPERATOR
    assert POLICY.check("/", {}, "view-token") is Role.VIEWER


@pytest.mark.parametrize(
    ("headers", "query", "complaint"),
    [
        ({}, None, "a token is required"),
        ({}, "wrong", "not valid"),
        ({"authorization": "Bearer wrong"}, None, "not valid"),
        ({"authorization": "Basic b3A6dG9rZW4="}, None, "must be 'Bearer <token>'"),
        ({"authorization": "Bearer"}, None, "must be 'Bearer <token>'"),
    ],
)
def test_missing_or_wrong_tokens_are_401(
    headers: dict[str, str], query: str | None, complaint: str
) -> None:
    with pytest.raises(HttpError, match=complaint) as refused:
        POLICY.check("/api/session", headers, query)
    assert refused.value.status == 401
    assert ("WWW-Authenticate", 'Bearer realm="runcast"') in refused.value.headers


def test_healthz_needs_no_token() -> None:
    assert POLICY.check("/healthz", {}, None) is Role.VIEWER


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
        ("http://LOCALHOST:8765", "localhost:8765"),
        ("http://example.com", "example.com:80"),
        ("https://example.com", "example.com"),
        ("http://[::1]:8765", "[::1]:8765"),
    ],
)
def test_same_origin_passes(origin: str, host: str) -> None:
    OPEN.check_origin({"origin": origin, "host": host})


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://evil.example", "127.0.0.1:8765"),
        ("http://127.0.0.1:9999", "127.0.0.1:8765"),
        ("null", "127.0.0.1:8765"),
        ("https://127.0.0.1:8765", "127.0.0.1"),
        ("http://127.0.0.1:8765", ""),
    ],
)
def test_foreign_origin_is_403(origin: str, host: str) -> None:
    with pytest.raises(HttpError, match="not allowed") as refused:
        OPEN.check_origin({"origin": origin, "host": host})
    assert refused.value.status == 403


def test_allowed_origins() -> None:
    policy = AccessPolicy(ServerConfig(allow_origins=("https://dash.example.com",)))
    policy.check_origin({"origin": "https://dash.example.com", "host": "127.0.0.1:8765"})
    with pytest.raises(HttpError):
        policy.check_origin({"origin": "https://other.example.com", "host": "127.0.0.1:8765"})
    AccessPolicy(ServerConfig(allow_origins=("*",))).check_origin({"origin": "null"})


def test_no_origin_header_passes() -> None:
    OPEN.check_origin({"host": "127.0.0.1:8765"})


def test_origin_is_checked_before_the_token() -> None:
    with pytest.raises(HttpError) as refused:
        POLICY.check("/ws", {"origin": "http://evil.example", "host": "x:1"}, "op-token")
    assert refused.value.status == 403


# -- the Host check (issue 17: DNS rebinding) ------------------------------------------
PORT = 8765
OPEN_ON_PORT = AccessPolicy(ServerConfig(port=0), PORT)


@pytest.mark.parametrize(
    "host",
    [
        f"127.0.0.1:{PORT}",
        f"localhost:{PORT}",
        f"LocalHost:{PORT}",
        f"[::1]:{PORT}",
        f"127.1:{PORT}",
        "127.0.0.1",  # no port: not something a browser on another port can send
        "localhost",
    ],
)
def test_loopback_hosts_on_the_servers_port_are_served(host: str) -> None:
    assert OPEN_ON_PORT.check("/api/tasks", {"host": host}, None) is Role.OPERATOR


@pytest.mark.parametrize(
    "host",
    [
        f"attacker.example:{PORT}",
        "attacker.example",
        f"127.0.0.1.nip.io:{PORT}",
        f"localhost.attacker.example:{PORT}",
        f"127.0.0.1:{PORT + 1}",
        f"localhost:{PORT + 1}",
        f"user@127.0.0.1:{PORT}",
        f"127.0.0.1:{PORT}/x",
        "127.0.0.1:notaport",
        "",
    ],
)
def test_other_hosts_are_421_without_a_token(host: str) -> None:
    with pytest.raises(HttpError, match="not a name this server answers to") as refused:
        OPEN_ON_PORT.check("/api/tasks", {"host": host}, None)
    assert refused.value.status == 421
    assert f"port {PORT}" in refused.value.message


def test_rebinding_page_is_421_even_though_it_is_same_origin() -> None:
    headers = {"host": f"attacker.example:{PORT}", "origin": f"http://attacker.example:{PORT}"}
    for path in ("/ws", "/api/tasks", "/api/session", "/metrics", "/", "/healthz"):
        with pytest.raises(HttpError) as refused:
            OPEN_ON_PORT.check(path, headers, None)
        assert refused.value.status == 421


def test_allow_host_names_more_hosts() -> None:
    config = ServerConfig(port=0, allow_hosts=("runcast.example.com", "box.lan:9000"))
    policy = AccessPolicy(config, PORT)
    for host in ("runcast.example.com", "RUNCAST.example.com:443", "box.lan:9000"):
        policy.check_host({"host": host})
    for host in ("box.lan:9001", "box.lan", "other.example.com"):
        with pytest.raises(HttpError, match="--allow-host"):
            policy.check_host({"host": host})


def test_allowed_origins_hosts_are_served() -> None:
    policy = AccessPolicy(ServerConfig(port=0, allow_origins=("https://dash.example.com",)), PORT)
    policy.check_host({"host": "dash.example.com"})
    with pytest.raises(HttpError):
        policy.check_host({"host": "attacker.example"})


def test_a_named_bind_address_is_served() -> None:
    config = ServerConfig(host="192.168.1.5", port=0, auth_tokens=("t",), allow_hosts=("x.lan",))
    policy = AccessPolicy(config, PORT)
    policy.check_host({"host": f"192.168.1.5:{PORT}"})
    with pytest.raises(HttpError):
        policy.check_host({"host": f"192.168.1.6:{PORT}"})


def test_with_a_token_the_host_is_checked_only_when_allow_host_is_given() -> None:
    tokens = ServerConfig(host="0.0.0.0", port=0, auth_tokens=("t",))
    AccessPolicy(tokens, PORT).check_host({"host": "anything.example"})  # the token guards
    listed = AccessPolicy(attrs.evolve(tokens, allow_hosts=("a.lan",)), PORT)
    listed.check_host({"host": "a.lan"})
    with pytest.raises(HttpError):
        listed.check_host({"host": "anything.example"})


def test_star_serves_every_host() -> None:
    AccessPolicy(ServerConfig(port=0, allow_hosts=("*",)), PORT).check_host({"host": "any.example"})


def test_no_host_header_passes() -> None:
    OPEN_ON_PORT.check_host({})  # HTTP/1.0 without Host: browsers always send one


def test_host_is_checked_before_the_token() -> None:
    with pytest.raises(HttpError) as refused:
        AccessPolicy(ServerConfig(port=0, auth_tokens=("op",), allow_hosts=("a.lan",)), PORT).check(
            "/ws", {"host": "attacker.example"}, "op"
        )
    assert refused.value.status == 421
