"""WebSocket and HTTP clients of a runcast server, used by the ``runcast`` CLI clients.

``open_client`` connects to the WebSocket endpoint (trio-websocket) and translates
every way of failing into one of the client errors below, so the CLI can map them
to exit codes; ``fetch_json`` does the same for the read-only HTTP endpoints.
"""

from __future__ import annotations

import json
import math
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import attrs
import h11
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from .._defaults import DEFAULT_URL
from ._exceptions import (
    AuthRefusedError,
    ClientError,
    ErrorReplyError,
    ProtocolError,
    ServerUnreachableError,
)

CONNECT_TIMEOUT = 5.0
CANCELLED_CLOSE_WAIT = 0.1
HTTP_TIMEOUT = 10.0
MAX_FRAME = 1 << 20
MAX_HTTP_BODY = 16 << 20
# Frames the client skips while waiting for a reply (events of a live subscription).
MAX_SKIPPED_FRAMES = 10_000
#: Rows asked for per ``/api/tasks`` page (the server's most), and pages read at most
#: (a server lists its live tasks and 5,000 finished ones).
TASKS_PAGE = 1000
MAX_TASK_PAGES = 1000


def check_url(url: str) -> None:
    """Raise :class:`ClientError` unless ``url`` is a ``ws://`` or ``wss://`` URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ClientError(
            f"URL must look like ws://HOST:PORT/ws, http://HOST:PORT/ or HOST:PORT, got {url!r}"
        )
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError as exc:
        raise ClientError(f"URL {url!r}: {exc}") from exc


def websocket_url(text: str) -> str:
    """The WebSocket URL a user means, checked: ``ws(s)://`` as given; the
    ``http(s)://HOST:PORT/`` a server prints, or a bare ``HOST:PORT``, mapped to
    its ``/ws``. :class:`ClientError` when it is none of these."""
    if "://" not in text:
        if ":" not in text:
            raise ClientError(f"URL {text!r}: a bare address needs its port (HOST:PORT)")
        text = f"ws://{text}/ws"
    parts = urlsplit(text)
    if parts.scheme in ("http", "https"):
        path = parts.path if parts.path not in ("", "/") else "/ws"
        scheme = "ws" if parts.scheme == "http" else "wss"
        text = urlunsplit((scheme, parts.netloc, path, parts.query, ""))
    check_url(text)
    return text


def http_url(ws_url: str, path: str) -> str:
    """The HTTP(S) URL of ``path`` on the server whose WebSocket URL is ``ws_url``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _auth_headers(token: str | None) -> list[tuple[bytes, bytes]]:
    return [] if not token else [(b"authorization", f"Bearer {token}".encode())]


def _refused(status: int, url: str) -> ClientError:
    if status in (401, 403):
        reason = "missing or wrong token" if status == 401 else "forbidden"
        return AuthRefusedError(f"{url}: refused ({status} {reason})")
    return ErrorReplyError(f"{url}: server answered HTTP {status}")


def decode_frame(text: str | bytes) -> dict[str, Any]:
    """A server frame as a dict; ``ProtocolError`` naming what was wrong otherwise."""
    try:
        frame = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"server sent a frame that is not JSON: {exc}") from exc
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError(f"server sent a frame without a string 'type': {text[:200]!r}")
    return frame


@attrs.define(eq=False)
class RuncastClient:
    """One WebSocket connection to a runcast server, speaking its JSON protocol."""

    url: str
    _ws: WebSocketConnection

    async def send(self, frame: dict[str, Any]) -> None:
        try:
            await self._ws.send_message(json.dumps(frame, separators=(",", ":")))
        except ConnectionClosed as exc:
            raise ServerUnreachableError(f"{self.url}: connection closed ({exc.reason})") from exc

    async def receive(self) -> dict[str, Any]:
        """The next frame; ``ServerUnreachableError`` once the connection is gone."""
        try:
            message = await self._ws.get_message()
        except ConnectionClosed as exc:
            raise ServerUnreachableError(f"{self.url}: connection closed ({exc.reason})") from exc
        return decode_frame(message)

    async def request(self, frame: dict[str, Any], reply_type: str) -> dict[str, Any]:
        """Send ``frame`` and return the first ``reply_type`` frame; error frames raise."""
        await self.send(frame)
        for _ in range(MAX_SKIPPED_FRAMES):
            reply = await self.receive()
            if reply["type"] == reply_type:
                return reply
            if reply["type"] == "error":
                raise ErrorReplyError(f"server error: {reply.get('error', '(no message)')}")
        raise ProtocolError(f"no {reply_type!r} reply within {MAX_SKIPPED_FRAMES} frames")

    async def command(
        self, action: str, *, task_id: str = "*", data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "command", "action": action, "task_id": task_id}
        if data is not None:
            frame["data"] = data
        return await self.request(frame, "command_result")

    async def subscribe(self, task_id: str = "*", *, since: int | None = None) -> None:
        frame: dict[str, Any] = {"type": "subscribe", "task_id": task_id}
        if since is not None:
            frame["since"] = since
        await self.request(frame, "subscribed")

    async def ping(self) -> None:
        await self.request({"type": "ping"}, "pong")

    async def session_snapshot(self) -> dict[str, Any]:
        """Subscribe to ``"*"`` and return the ``session_update`` data that follows."""
        await self.subscribe("*")
        for _ in range(MAX_SKIPPED_FRAMES):
            frame = await self.receive()
            if frame["type"] == "event" and frame.get("event") == "session_update":
                data = frame.get("data")
                if not isinstance(data, dict):
                    raise ProtocolError("session_update without a data object")
                return data
            if frame["type"] == "error":
                raise ErrorReplyError(f"server error: {frame.get('error', '(no message)')}")
        raise ProtocolError(f"no session_update within {MAX_SKIPPED_FRAMES} frames")


@asynccontextmanager
async def open_client(
    url: str = DEFAULT_URL, *, token: str | None = None, connect_timeout: float = CONNECT_TIMEOUT
) -> AsyncIterator[RuncastClient]:
    """Connect to ``url``; every way of failing becomes a client error naming the cause.

    The TCP stream is opened and closed here rather than by ``open_websocket_url``,
    which leaves the socket to the garbage collector when the handshake is refused.
    """
    check_url(url)
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    try:
        with trio.fail_after(connect_timeout):
            stream = await _open_stream(parts.hostname or "", port, secure=secure)
    except (OSError, trio.TooSlowError) as exc:
        raise ServerUnreachableError(f"{url}: cannot connect ({_describe(exc)})") from exc
    resource = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    try:
        async with trio.open_nursery() as nursery:
            ws = await _handshake(nursery, stream, parts.netloc, resource, token, connect_timeout)
            try:
                yield RuncastClient(url, ws)
            finally:
                # Under cancellation the reader task is cancelled too and no close reply
                # will be read: send the close frame without waiting for the answer.
                cancelled = trio.current_effective_deadline() == -math.inf
                close_wait = CANCELLED_CLOSE_WAIT if cancelled else connect_timeout
                with trio.CancelScope(shield=True), trio.move_on_after(close_wait):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        failure = _single_failure(group)
        raise _translate(failure, url) from failure.__cause__
    except (HandshakeError, OSError, trio.BrokenResourceError) as exc:
        raise _translate(exc, url) from exc
    finally:
        await trio.aclose_forcefully(stream)


async def _handshake(
    nursery: trio.Nursery,
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
    host: str,
    resource: str,
    token: str | None,
    connect_timeout: float,
) -> WebSocketConnection:
    with trio.move_on_after(connect_timeout):
        return await wrap_client_stream(
            nursery,
            stream,
            host,
            resource,
            extra_headers=_auth_headers(token),
            max_message_size=MAX_FRAME,
        )
    raise ServerUnreachableError(f"no WebSocket handshake within {connect_timeout:g}s")


async def _open_stream(
    host: str, port: int, *, secure: bool
) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    if secure:
        context = ssl.create_default_context()
        return await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
    return await trio.open_tcp_stream(host, port)


def _single_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real exception of a nursery's group (trio-websocket's reader or the body)."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(reversed(exc.exceptions))
        else:
            leaves.append(exc)
    real = [exc for exc in leaves if not isinstance(exc, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    return leaves[0] if not real else group


def _translate(exc: BaseException, url: str) -> BaseException:
    if isinstance(exc, ConnectionRejected):
        return _refused(exc.status_code, url)
    if isinstance(exc, HandshakeError | OSError | trio.BrokenResourceError):
        return ServerUnreachableError(f"{url}: connection failed ({_describe(exc)})")
    return exc


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # trio's multi-address connect error lists every attempt; the first line says enough.
    return text.splitlines()[0]


async def fetch_json(ws_url: str, path: str, *, token: str | None = None) -> Any:
    """GET ``path`` from the server of ``ws_url`` and decode its JSON body.

    Callers bound the time with ``trio.fail_after``.
    """
    check_url(ws_url)
    url = http_url(ws_url, path)
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    try:
        stream = await _open_stream(
            parts.hostname or "", parts.port or (443 if secure else 80), secure=secure
        )
    except OSError as exc:
        raise ServerUnreachableError(f"{url}: cannot connect ({_describe(exc)})") from exc
    async with stream:
        try:
            status, body = await _http_get(stream, urlsplit(url).netloc, path, token)
        except (OSError, trio.BrokenResourceError) as exc:
            raise ServerUnreachableError(f"{url}: connection lost ({_describe(exc)})") from exc
        except h11.ProtocolError as exc:
            raise ProtocolError(f"{url}: malformed HTTP response ({exc})") from exc
    if status != 200:
        raise _refused(status, url)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"{url}: response is not JSON ({exc})") from exc


async def _http_get(
    stream: trio.abc.Stream, authority: str, path: str, token: str | None
) -> tuple[int, bytes]:
    conn = h11.Connection(h11.CLIENT)
    headers = [(b"host", authority.encode()), (b"connection", b"close")]
    headers += [(b"accept", b"application/json"), *_auth_headers(token)]
    await stream.send_all(conn.send(h11.Request(method="GET", target=path, headers=headers)))
    await stream.send_all(conn.send(h11.EndOfMessage()))
    status = 0
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_HTTP_BODY:
                raise h11.RemoteProtocolError(f"body larger than {MAX_HTTP_BODY} bytes")
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return status, bytes(body)


async def fetch_tasks(url: str, token: str | None) -> list[dict[str, Any]]:
    """Every task of ``GET /api/tasks`` (page after page) as row objects, within
    ``HTTP_TIMEOUT``."""
    rows: list[dict[str, Any]] = []
    path = f"/api/tasks?limit={TASKS_PAGE}"
    with trio.move_on_after(HTTP_TIMEOUT):
        for _ in range(MAX_TASK_PAGES):
            body = await fetch_json(url, path, token=token)
            page = body.get("tasks") if isinstance(body, dict) else None
            if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
                raise ProtocolError(f"{url}: /api/tasks did not answer {{'tasks': [objects]}}")
            rows.extend(page)
            cursor = body.get("next")
            if cursor is None:
                return rows
            if not isinstance(cursor, str) or not cursor:
                raise ProtocolError(f"{url}: /api/tasks answered a 'next' that is no cursor")
            path = f"/api/tasks?limit={TASKS_PAGE}&after={quote(cursor, safe='')}"
        raise ProtocolError(f"{url}: /api/tasks had more than {MAX_TASK_PAGES} pages")
    raise ServerUnreachableError(
        f"{http_url(url, '/api/tasks')}: no answer within {HTTP_TIMEOUT:g}s"
    )


@attrs.define
class Backoff:
    """Capped exponential backoff with jitter, for reconnecting forever."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = attrs.field(factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        # The exponent is capped so a client retrying for days never overflows a float.
        base = min(self.maximum, self.initial * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        spread = base * self.jitter
        return max(0.0, min(self.maximum, base + self.rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.attempt = 0
