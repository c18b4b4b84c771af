"""Fuzz the HTTP side of the port: every request head gets its documented answer.

Each hypothesis example starts a server on loopback (pytest-trio runs every example
in a fresh ``trio.run``), sends one generated head (random methods, targets, versions,
header names and values, bare LF or missing final CRLF, heads over the 16 KiB limit,
WebSocket upgrades with bad ``Upgrade``/``Connection``/``Sec-WebSocket-Key``/
``Sec-WebSocket-Version`` headers, raw garbage), half-closes, and reads the answer
until the server closes. The expected status comes from h11 (well-formed or not: the
server reads heads with h11) and docs/protocol.md's table (404, 405, 426, 400, 431, 101,
200; 421 for a ``Host`` that is not loopback); a 5xx, a missing answer, a hang or a
logged error fails the example, and after each one the server must still answer
``GET /healthz``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs
import h11
import pytest
import structlog
import trio
from _api_support import http_get, served
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

EXAMPLE_TIMEOUT = 10
MAX_HEAD = 16 * 1024
ENDPOINTS = frozenset({"/", "/healthz", "/metrics", "/api/session", "/api/tasks"})
FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HEAD_END = re.compile(rb"\r?\n\r?\n")


@attrs.frozen
class Head:
    kind: str
    data: bytes


# -- the contract ------------------------------------------------------------------------
def expected_statuses(data: bytes) -> frozenset[int] | None:
    """What the server may answer ``data`` followed by EOF with; None: nothing at all."""
    if not data:
        return None
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    parser.receive_data(data)
    parser.receive_data(b"")
    try:
        request = parser.next_event()
    except h11.RemoteProtocolError as exc:
        return frozenset({exc.error_status_hint})
    if not isinstance(request, h11.Request):
        return None
    end = HEAD_END.search(data)
    if end is not None and end.end() > MAX_HEAD:
        return frozenset({431})
    hosts = [value for name, value in request.headers if name.lower() == b"host"]
    if hosts not in ([], [b"127.0.0.1"]):
        return frozenset({421})  # a Host not naming loopback: refused before routing
    statuses = set(routed(request))
    if any(name.lower() == b"origin" for name, _ in request.headers):
        statuses.add(403)  # unless it is the server's own origin
    return frozenset(statuses)


def routed(request: h11.Request) -> set[int]:
    """docs/protocol.md's answer to a well-formed head, with no tokens configured."""
    target = request.target.decode("latin-1")
    try:
        path = urlsplit(target).path
    except ValueError:
        return {400}
    if not path.startswith("/"):
        return {400}
    get = request.method == b"GET"
    if path == "/ws":
        if not get:
            return {405}
        return upgrade_answer({k.lower(): v.lower() for k, v in request.headers})
    if path in ENDPOINTS or path.startswith("/static/"):
        if not get:
            return {405}
        return {200, 404} if path.startswith("/static/") else {200}
    return {404}


def upgrade_answer(headers: dict[bytes, bytes]) -> set[int]:
    tokens = {t.strip() for t in headers.get(b"connection", b"").split(b",")}
    if headers.get(b"upgrade") != b"websocket" or b"upgrade" not in tokens:
        return {426}
    if not headers.get(b"sec-websocket-key"):
        return {400}
    if headers.get(b"sec-websocket-version") != b"13":
        return {426}
    # wsproto re-reads the head and may refuse what our checks let through.
    return {101, 400}


# -- what clients send ---------------------------------------------------------------------
def mostly(
    usual: st.SearchStrategy[bytes], odd: st.SearchStrategy[bytes]
) -> st.SearchStrategy[bytes]:
    """``usual`` four times in five, so most heads get past the parser to the routes."""
    return st.integers(0, 4).flatmap(lambda n: odd if n == 0 else usual)


token_chars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=token_chars, min_size=1, max_size=20).map(str.encode)
printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
methods = mostly(
    st.sampled_from([b"GET", b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS"]),
    tokens | st.binary(max_size=12),
)
paths = [
    "/", "/healthz", "/metrics", "/api/session", "/api/tasks", "/ws", "/ws?since=1",
    "/static/dashboard.js", "/static/../../etc/passwd", "/static/%2e%2e/x.js", "/nope",
    "*", "http://127.0.0.1/healthz", "//x", "/a?token=%zz&&=", "/healthz?token=x#frag",
]  # fmt: skip
targets = mostly(
    st.sampled_from(paths).map(str.encode) | printable.map(lambda t: ("/" + t).encode()),
    st.binary(max_size=40),
)
versions = mostly(
    st.just(b"HTTP/1.1"),
    st.sampled_from([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"http/1.1", b""]),
)
header_names = mostly(
    st.sampled_from(
        [
            "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin",
            "Authorization", "Accept", "Content-Length", "Transfer-Encoding", "Cookie", "X-Any",
        ]
    ).map(str.encode)
    | tokens,
    st.binary(max_size=20),
)  # fmt: skip
accepts = st.builds(
    lambda mime, version: f"{mime}; version={version}".encode(),
    st.sampled_from(["application/openmetrics-text", "text/plain", "*/*"]),
    st.sampled_from(["1.0.0", "0.0.4", "abc", "1.x", "", "2"]) | printable,
)
header_values = mostly(
    printable.map(str.encode)
    | accepts
    | st.sampled_from([b"websocket", b"Upgrade", b"13", b"-1", b"Bearer x", b"chunked"])
    | st.sampled_from([b"http://evil.example", b"null", b"http://127.0.0.1"]),
    st.binary(max_size=60),
)


@st.composite
def random_heads(draw: st.DrawFn) -> Head:
    eol = draw(mostly(st.just(b"\r\n"), st.just(b"\n")))
    lines = [draw(methods) + b" " + draw(targets) + b" " + draw(versions)]
    if draw(st.integers(0, 4)):
        lines.append(b"Host: 127.0.0.1")
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=5))
    lines += [name + b": " + value for name, value in headers]
    ending = draw(mostly(st.just(eol + eol), st.sampled_from([eol, b""])))  # or cut short
    return Head("random", eol.join(lines) + ending)


@st.composite
def metrics_heads(draw: st.DrawFn) -> Head:
    """Scrapes with every kind of Accept header (prometheus_client parses it)."""
    accept = draw(accepts | printable.map(str.encode))
    head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: " + accept + b"\r\n\r\n"
    return Head("metrics", head)


@st.composite
def upgrade_heads(draw: st.DrawFn) -> Head:
    def header(name: str, good: str, bad: list[str]) -> list[bytes]:
        value = draw(
            st.integers(0, 2).flatmap(
                lambda n: (
                    st.just(good)
                    if n
                    else st.sampled_from([None, *bad]) | st.text(token_chars, max_size=30)
                )
            )
        )
        return [] if value is None else [f"{name}: {value}".encode()]

    lines = [b"GET /ws HTTP/1.1", b"Host: 127.0.0.1"]
    lines += header("Upgrade", "websocket", ["WebSocket", "h2c", "websocket, h2c"])
    lines += header("Connection", "Upgrade", ["keep-alive, Upgrade", "close", "upgrade2"])
    lines += header("Sec-WebSocket-Key", GOOD_KEY, ["short", "!!!not base64!!!", "=" * 24])
    lines += header("Sec-WebSocket-Version", "13", ["8", "13, 8", "14", "013"])
    return Head("upgrade", b"\r\n".join(lines) + b"\r\n\r\n")


@st.composite
def oversize_heads(draw: st.DrawFn) -> Head:
    size = draw(st.integers(MAX_HEAD, MAX_HEAD + 24_000))
    if draw(st.booleans()):
        headers = b"X-Pad: " + b"a" * size + b"\r\n"
    else:
        headers = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"b" * 100) for n in range(size // 110 + 1))
    return Head("oversize", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")


heads = st.sampled_from(
    [
        random_heads(),
        random_heads(),
        random_heads(),
        metrics_heads(),
        upgrade_heads(),
        upgrade_heads(),
        oversize_heads(),
        st.binary(max_size=300).map(lambda data: Head("garbage", data)),
    ]
).flatmap(lambda strategy: strategy)


# -- the exchange ------------------------------------------------------------------------------
async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, and read until the server closes."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        try:
            await stream.send_all(data)
            await stream.send_eof()
        except trio.BrokenResourceError:
            pass  # answered (431) and closed before the rest was out; read the answer
        received = bytearray()
        try:
            while chunk := await stream.receive_some(65536):
                received += chunk
        except trio.BrokenResourceError:
            pass  # reset after the answer: what arrived before still counts
    return bytes(received)


def status_of(answer: bytes) -> int:
    status_line = answer.split(b"\r\n", 1)[0]
    version, _, rest = status_line.partition(b" ")
    assert version == b"HTTP/1.1", answer[:200]
    return int(rest[:3])


@FUZZ_SETTINGS
@given(heads)
async def test_every_request_head_gets_its_documented_answer(head: Head) -> None:
    event(head.kind)
    expected = expected_statuses(head.data)
    with trio.fail_after(EXAMPLE_TIMEOUT), structlog.testing.capture_logs() as logs:
        async with served() as stack:
            answer = await exchange(stack.port, head.data)
            if expected is None:
                assert answer == b""
            else:
                status = status_of(answer)
                event(f"status {status}")
                assert status in expected, (status, expected, answer[:300])
            assert (await http_get(stack.port, "/healthz")).status == 200
    assert [entry for entry in logs if entry["log_level"] in ("error", "critical")] == []
