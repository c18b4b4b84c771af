"""Server configuration checks, tokens, roles and the Origin rule."""

from __future__ import annotations

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
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


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
