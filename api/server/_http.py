"""The HTTP side of the single port: read a request head, answer it with h11.

The head is read here so plain HTTP requests can be answered too; for WebSocket
upgrades the bytes already read are replayed to the WebSocket session
(``_ws_wire``) through :class:`ReplayStream`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from http import HTTPStatus
from types import MappingProxyType
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio

from ._direct_writes import ReplayStream
from ._exceptions import HttpError
from ._streams import close_quietly

RECEIVE_CHUNK = 4096
HEAD_END = re.compile(rb"\r?\n\r?\n")
LINGER_SECONDS = 1.0
LINGER_BYTES = 64 * 1024


@attrs.frozen
class RequestHead:
    """A parsed request line and headers (names lower-cased, repeats joined by ``,``)."""

    method: str
    target: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]

    @property
    def wants_websocket(self) -> bool:
        upgrade = self.headers.get("upgrade", "").lower()
        connection = self.headers.get("connection", "").lower()
        tokens = {part.strip() for part in connection.split(",")}
        return upgrade == "websocket" and "upgrade" in tokens


def _decode_head(event: h11.Request) -> RequestHead:
    headers: dict[str, str] = {}
    for raw_name, raw_value in event.headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    target = event.target.decode("latin-1")
    try:
        parts = urlsplit(target)
    except ValueError as exc:
        raise HttpError(400, f"malformed request target: {exc}") from exc
    if not parts.path.startswith("/"):
        raise HttpError(400, "the request target must be an absolute path")
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    return RequestHead(
        method=event.method.decode("ascii", "replace"),
        target=target,
        path=parts.path,
        headers=MappingProxyType(headers),
        query=MappingProxyType(query),
    )


@attrs.define(eq=False)
class HttpConnection:
    """One TCP connection's HTTP state: the h11 machine and every byte received."""

    stream: trio.abc.Stream
    max_head_bytes: int
    #: None once :meth:`upgrade` handed the connection over.
    h11_conn: h11.Connection | None = attrs.field(init=False)
    received: bytearray = attrs.field(factory=bytearray)
    #: The request's method once its head is read: a reply to HEAD has no body.
    method: bytes = b""

    def __attrs_post_init__(self) -> None:
        self.h11_conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_bytes)

    def _machine(self) -> h11.Connection:
        if self.h11_conn is None:
            raise RuntimeError("this HTTP connection was handed over by upgrade()")
        return self.h11_conn

    def upgrade(self) -> ReplayStream:
        """Hand the connection over (to WebSocket): a stream replaying the bytes read so far.

        The HTTP state is let go, since the connection may now live for hours:
        the h11 machine and the head's bytes.  Nothing can be answered here after.
        """
        stream = ReplayStream(self.stream, bytes(self.received))
        self.received = bytearray()
        self.h11_conn = None
        return stream

    async def read_head(self) -> RequestHead | None:
        """The request head, or None if the peer closed before sending one.

        Raises ``HttpError`` 400 (malformed) or 431 (head larger than the limit).
        The caller bounds the time this may take.
        """
        while True:
            try:
                event = self._machine().next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                what = "too large" if status == 431 else "malformed"
                raise HttpError(status, f"request head {what}: {exc}") from exc
            if isinstance(event, h11.Request):
                self.method = event.method
                self._check_head_size(complete=True)
                return _decode_head(event)
            if isinstance(event, h11.ConnectionClosed):
                return None
            self._check_head_size(complete=False)
            data = await self._receive()
            if not data and not self.received:
                return None
            self.received += data
            self._machine().receive_data(data)

    def _check_head_size(self, *, complete: bool) -> None:
        # h11 bounds only a head still incomplete; one that arrives whole in a
        # few reads is measured here.
        size = len(self.received)
        if complete:
            end = HEAD_END.search(self.received)
            size = end.end() if end is not None else size
        if size > self.max_head_bytes:
            raise HttpError(431, f"request head too large: more than {self.max_head_bytes} bytes")

    async def _receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(RECEIVE_CHUNK))
        except trio.BrokenResourceError:
            return b""

    @property
    def can_respond(self) -> bool:
        conn = self.h11_conn
        return conn is not None and conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Send a complete response and mark the connection to close after it."""
        if not self.can_respond:
            return
        response = h11.Response(
            status_code=status,
            reason=HTTPStatus(status).phrase.encode(),
            headers=[
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Connection", "close"),
                # Tokens may ride in query strings; do not leak them to other sites.
                ("Referrer-Policy", "no-referrer"),
                *headers,
            ],
        )
        conn = self._machine()
        data = conn.send(response) or b""
        if self.method != b"HEAD":
            # h11 refuses a body after HEAD (the headers still say how long it would be);
            # sending one raised out of the error handler and took the whole server down.
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(data)

    async def respond_error(self, error: HttpError) -> None:
        body = f"{error.status} {HTTPStatus(error.status).phrase}: {error.message}\n"
        await self.respond(
            error.status, body.encode(), "text/plain; charset=utf-8", headers=error.headers
        )

    async def close(self) -> None:
        """Close after a lingering read, so unread request bytes do not reset the answer.

        Closing a socket with unread input makes the kernel send RST, which can
        destroy a response (a 431, say) before the client reads it.
        """
        with trio.CancelScope(shield=True), trio.move_on_after(LINGER_SECONDS):
            try:
                if isinstance(self.stream, trio.abc.HalfCloseableStream):
                    await self.stream.send_eof()
                drained = 0
                while drained < LINGER_BYTES:
                    chunk = await self.stream.receive_some(RECEIVE_CHUNK)
                    if not chunk:
                        break
                    drained += len(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await close_quietly(self.stream)
