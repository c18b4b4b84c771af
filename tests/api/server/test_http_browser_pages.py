"""What a browser gets on its own: the token page of a 401, and /favicon.ico."""

from __future__ import annotations

import pytest
import structlog
import trio
from _api_support import http_exchange, http_get, served

from api import ServerConfig
from api.server._pages import wants_html

TIMEOUT = 10
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _with_token() -> ServerConfig:
    return ServerConfig(port=0, auth_tokens=("op-secret",))


async def test_a_browser_without_a_token_gets_a_page_explaining_it() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(_with_token()) as stack:
            reply = await http_get(stack.port, "/", headers={"Accept": BROWSER_ACCEPT})
    assert reply.status == 401
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["www-authenticate"] == 'Bearer realm="runcast"'
    page = reply.body.decode()
    assert "<title>runcast: a token is needed</title>" in page
    assert "a token is required" in page
    assert f"http://127.0.0.1:{stack.port}/?token=TOKEN" in page
    assert "--auth-token" in page
    assert "--viewer-token" in page


async def test_a_wrong_token_page_says_so_and_escapes_what_it_echoes() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(_with_token()) as stack:
            lines = [
                "GET /?token=nope HTTP/1.1",
                "Host: 127.0.0.1:<b>",
                f"Accept: {BROWSER_ACCEPT}",
                "Connection: close",
            ]
            reply = await http_exchange(stack.port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    # With a token the Host is not checked (no --allow-host), so it reaches the page.
    assert reply.status == 401
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert b"the token is not valid" in reply.body
    assert b"<b>" not in reply.body
    assert b"http://127.0.0.1:&lt;b&gt;/?token=TOKEN" in reply.body


async def test_scripts_still_get_plain_text() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(_with_token()) as stack:
            api = await http_get(stack.port, "/api/session", headers={"Accept": "*/*"})
            bare = await http_get(stack.port, "/api/tasks")
    for reply in (api, bare):
        assert reply.status == 401
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        assert reply.body == b"401 Unauthorized: a token is required\n"


async def test_favicon_is_served_without_a_token_and_logs_no_refusal() -> None:
    with trio.fail_after(TIMEOUT), structlog.testing.capture_logs() as logs:
        async with served(_with_token()) as stack:
            reply = await http_get(stack.port, "/favicon.ico")
    assert reply.status == 200
    assert reply.headers["content-type"] == "image/svg+xml"
    assert reply.body.startswith(b"<svg ")
    assert [entry for entry in logs if entry["log_level"] in ("warning", "error")] == []


async def test_the_dashboard_page_links_the_favicon() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            page = await http_get(stack.port, "/")
    assert b'<link rel="icon" href="favicon.ico"' in page.body


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("TEXT/HTML; charset=utf-8", True),
        ("application/xhtml+xml", True),
        ("text/html;q=0", False),
        ("*/*", False),
        ("application/json", False),
        ("", False),
    ],
)
def test_wants_html(accept: str, html: bool) -> None:
    assert wants_html({"accept": accept}) is html
