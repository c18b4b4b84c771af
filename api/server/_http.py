"""The HTTP side of the single port: read a request head, answer it with h11.

The head is read here (not by trio-websocket) so plain HTTP requests can be
answered too; for WebSocket upgrades the bytes already read are replayed to
trio-websocket through :class:`ReplayStream`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from http import HTTPStatus
from types import MappingProxyType
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio

from ._exceptions import HttpError

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
        await _close_quietly(self.stream)


async def _close_quietly(stream: trio.abc.AsyncResource) -> None:
    with (
        trio.CancelScope(shield=True),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await stream.aclose()


@attrs.define(eq=False)
class ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read from ``inner``, then reads on.

    Every byte for a WebSocket client passes here: trio-websocket writes through
    :meth:`send_all`, and the fan-out writes whole pre-built frames through
    :meth:`try_write` without waiting.  The two never interleave inside a frame:
    ``try_write`` refuses while ``send_all`` runs, and what a partial
    ``try_write`` left over is sent by the next ``send_all`` (or :meth:`flush`)
    before anything else.
    """

    inner: trio.abc.Stream
    buffered: bytes
    _send_lock: trio.StrictFIFOLock = attrs.field(factory=trio.StrictFIFOLock, init=False)
    #: Tasks in send_all or flush, writing or waiting to: try_write's cheap test.
    _senders: int = attrs.field(default=0, init=False)
    _owed: bytes = attrs.field(default=b"", init=False)
    #: The socket try_write writes to; None when there is none, or once closed.
    _socket: trio.socket.SocketType | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.inner, trio.SocketStream) and os.name == "posix":
            self._socket = self.inner.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.buffered:
            size = len(self.buffered) if max_bytes is None else max_bytes
            chunk, self.buffered = self.buffered[:size], self.buffered[size:]
            await trio.lowlevel.checkpoint()
            return chunk
        return bytes(await self.inner.receive_some(max_bytes))

    @property
    def sending(self) -> bool:
        """True while a :meth:`send_all` or :meth:`flush` is writing (or waiting to)."""
        return self._senders > 0

    @property
    def owed(self) -> int:
        """Bytes of a partial :meth:`try_write` not yet sent."""
        return len(self._owed)

    @property
    def can_write_now(self) -> bool:
        """Whether :meth:`try_write` may write: the inner stream is an open POSIX socket."""
        return self._socket is not None

    def try_write(self, data: bytes) -> int:
        """Write what the socket takes of ``data`` now, without waiting; the count written.

        0 (nothing written) while :meth:`send_all` runs, while bytes are owed,
        once closed, when the socket's buffer is full, when the peer is gone
        (the next ``send_all`` reports that), or when ``inner`` is no socket.
        After a partial write the rest is owed: the next ``send_all`` or
        :meth:`flush` sends it first.
        """
        sock = self._socket
        if sock is None or self._owed or self._senders:
            return 0
        # Looked up on every call: a closed socket's number may be reused.
        fd = sock.fileno()
        if fd < 0:
            return 0
        try:
            # The socket is non-blocking (trio made it so): this never waits.
            sent = os.write(fd, data)
        except OSError:  # BlockingIOError, or broken: left to send_all to report
            return 0
        if sent < len(data):
            self._owed = data[sent:]
        return sent

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._senders += 1
        try:
            await self._acquire()
            try:
                await self._send_owed()
                await self.inner.send_all(data)
            finally:
                self._send_lock.release()
        finally:
            self._senders -= 1

    async def flush(self) -> None:
        """Send what a partial :meth:`try_write` left owed (a checkpoint if nothing)."""
        if not self._owed:
            await trio.lowlevel.checkpoint()
            return
        self._senders += 1
        try:
            await self._acquire()
            try:
                await self._send_owed()
            finally:
                self._send_lock.release()
        finally:
            self._senders -= 1

    async def _acquire(self) -> None:
        # Mostly uncontended (trio-websocket serializes its own sends), so skip
        # the extra trip through the scheduler that ``acquire`` makes.
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()

    async def _send_owed(self) -> None:
        if self._owed:
            owed, self._owed = self._owed, b""
            await self.inner.send_all(owed)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        self.buffered = b""
        self._owed = b""
        self._socket = None
        await _close_quietly(self.inner)
