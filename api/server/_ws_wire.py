"""One server-side WebSocket connection's frames: wsproto's frame machine over a stream.

No task of its own and no handshake object: the server has already read and
checked the request head (``_http``, ``_server``), so :func:`accept_response`
answers it and :class:`WebSocketWire` speaks RFC 6455 frames through
wsproto's frame-level ``Connection``.  Whoever reads the stream feeds it here
(:meth:`WebSocketWire.receive_data`) and takes whole messages and control
frames out (:meth:`WebSocketWire.events`); every send goes through the one
``ReplayStream``, whose lock keeps frames whole.  That is all trio-websocket
did for the server, less a reader task, a message channel, a send lock of its
own and the handshake's HTTP machine per connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import attrs
import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, generate_accept_token

from ._direct_writes import ReplayStream, text_frame

#: A read's size: what one connection may hold unparsed at a time.
RECEIVE_CHUNK: Final = 4096
#: The peer sent no close frame before the connection ended (RFC 6455 7.1.5).
NO_CLOSE_FRAME: Final = 1006
MESSAGE_TOO_BIG: Final = 1009

Message = str | bytes
#: What :meth:`WebSocketWire.events` yields: a whole message, or a control frame.
WireEvent = Message | Ping | Pong | CloseConnection


def accept_response(key: str) -> bytes:
    """The ``101 Switching Protocols`` answer to a request with ``Sec-WebSocket-Key: key``.

    No subprotocol and no extension is accepted (so never permessage-deflate: the
    fan-out shares one frame's bytes between clients, see ``_direct_writes``).
    """
    accept = generate_accept_token(key.encode("latin-1")).decode("ascii")
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode("ascii")


@attrs.define(eq=False)
class WebSocketWire:
    """The frames of one accepted connection, read by its session's task."""

    stream: ReplayStream
    max_message_bytes: int
    _conn: Connection = attrs.field(factory=lambda: Connection(ConnectionType.SERVER))
    #: The parts of a message still arriving (None between messages).
    _parts: list[Message] | None = None
    _size: int = 0
    #: The code of the peer's close frame; None while none came.
    peer_close_code: int | None = None
    #: The stream ended (EOF or reset): nothing more can be sent or read.
    lost: bool = False

    @property
    def closed(self) -> bool:
        """A close frame came or went, or the stream is lost: no message may be sent."""
        return self.lost or self._conn.state is not ConnectionState.OPEN

    @property
    def open(self) -> bool:
        """Neither side has sent a close frame and the stream is not lost."""
        return not self.closed

    def receive_data(self, data: bytes, *, eof_if_empty: bool = True) -> None:
        """Feed bytes read from the stream; ``b""`` means it ended (unless told otherwise)."""
        if not data:
            self.lost = self.lost or eof_if_empty
            return
        if self._conn.state is not ConnectionState.CLOSED:
            self._conn.receive_data(data)

    def events(self) -> Iterator[WireEvent]:
        """Whole messages and control frames, in order, from what was fed so far.

        A message over ``max_message_bytes`` ends the connection: it is dropped
        and a ``CloseConnection(1009)`` stands in for it, to be answered with
        :meth:`answer_close` like a frame wsproto could not parse (1002, 1007).
        """
        for event in self._conn.events():
            if isinstance(event, TextMessage | BytesMessage):
                message = self._assemble(event)
                if message is not None:
                    yield message
                if self._size > self.max_message_bytes:
                    self._parts, self._size = None, 0
                    reason = f"message larger than {self.max_message_bytes} bytes"
                    yield CloseConnection(code=MESSAGE_TOO_BIG, reason=reason)
                    return
            elif isinstance(event, Ping | Pong | CloseConnection):
                if isinstance(event, CloseConnection) and self._is_peer_close():
                    self.peer_close_code = event.code
                yield event

    def _is_peer_close(self) -> bool:
        # wsproto reports a frame it cannot parse as a CloseConnection too, but
        # leaves the state OPEN: only a real close frame moves it on.
        return self._conn.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED)

    def _assemble(self, event: TextMessage | BytesMessage) -> Message | None:
        data: Message = bytes(event.data) if isinstance(event.data, bytearray) else event.data
        self._size += len(data)
        if self._size > self.max_message_bytes:
            return None
        if self._parts is None:
            if event.message_finished:
                self._size = 0
                return data  # the usual case: a message in one piece
            self._parts = []
        self._parts.append(data)
        if not event.message_finished:
            return None
        parts, self._parts, self._size = self._parts, None, 0
        if isinstance(data, str):
            return "".join(part for part in parts if isinstance(part, str))
        return b"".join(part for part in parts if isinstance(part, bytes))

    # -- sending -------------------------------------------------------------
    async def send_text(self, text: str) -> None:
        """Send one text message (``trio.ClosedResourceError`` once closed)."""
        if not self.open:
            raise trio.ClosedResourceError("the WebSocket is closing")
        await self.stream.send_all(text_frame(text))

    async def send(self, event: Ping | Pong | CloseConnection) -> None:
        """Send a control frame (``trio.ClosedResourceError`` once closed)."""
        try:
            data = self._conn.send(event)
        except LocalProtocolError as exc:
            raise trio.ClosedResourceError(f"cannot send {type(event).__name__}: {exc}") from exc
        await self.stream.send_all(data)

    async def answer_close(self, event: CloseConnection) -> None:
        """Answer the peer's close frame with ours, or fail the connection with ``event``'s code.

        The server closes the TCP connection right after (RFC 6455 7.1.1), so
        nothing is read after this but the peer's reply to a failing close.
        """
        if self._is_peer_close():
            if self._conn.state is ConnectionState.REMOTE_CLOSING:
                await self.send(event.response())
        elif self.open:
            await self.send(CloseConnection(code=event.code, reason=event.reason))

    async def close(self, code: int, reason: str | None) -> None:
        """End the close handshake: our close frame (unless sent), then the peer's.

        The caller bounds the wait; messages still arriving are dropped.  After a
        close that failed the connection (:meth:`answer_close` with 1002, 1007,
        1009) our side of the TCP connection ends at once, so the client sees
        the end without waiting for us, and its reply is still read (closing
        a socket with unread input would reset it, losing our close frame).
        """
        if self.open:
            await self.send(CloseConnection(code=code, reason=reason))
        elif self._conn.state is ConnectionState.LOCAL_CLOSING and not self.lost:
            await self.stream.send_eof()
        else:
            return
        while self._conn.state is not ConnectionState.CLOSED:
            self.receive_data(await self.stream.receive_some(RECEIVE_CHUNK))
            if self.lost:
                return
            for _ in self.events():
                pass  # dropped; the peer's close frame moves the state on
