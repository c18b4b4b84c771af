"""The fan-out's direct writes: each event's frame, built once, written to idle clients.

The slow path of the fan-out is a subscription's queue drained by the
session's writer task (``_websocket``).  The fast path, all here: while a
session has nothing queued it lends its subscription a hook, and the
publisher's own call writes the event's shared frame (:class:`FrameCache`) to
the socket with one non-blocking write (:func:`offer_frame`,
:meth:`ReplayStream.try_write`); no task is woken.  :class:`DeliveryCounts`
says how each frame went out.

A server's text frame (RFC 6455 section 5.2) is the same bytes for every
client: servers do not mask, and this server negotiates no extension
(``_ws_wire.accept_response`` accepts none, so never permessage-deflate), so each
event's frame is built once and written as is to every idle subscriber.
"""

from __future__ import annotations

import enum
import os
import struct
from collections import deque

import attrs
import trio

from events import Published

from ._streams import close_quietly

_FIN_TEXT = 0x81
_LENGTH_16 = 126
_LENGTH_64 = 127
#: The events a publish offers in a row (an event and the session_update after it).
FRAME_CACHE_SIZE = 8


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame carrying ``text``."""
    payload = text.encode()
    length = len(payload)
    if length < _LENGTH_16:
        head = bytes((_FIN_TEXT, length))
    elif length < 1 << 16:
        head = struct.pack("!BBH", _FIN_TEXT, _LENGTH_16, length)
    else:
        head = struct.pack("!BBQ", _FIN_TEXT, _LENGTH_64, length)
    return head + payload


@attrs.define(eq=False)
class FrameCache:
    """The frames of the last few events, found by identity.

    A publish offers the same :class:`Published` to every subscriber in turn,
    so the frame is built by the first and found by the rest.  Bounded: it
    holds at most ``size`` events.
    """

    size: int = FRAME_CACHE_SIZE
    built: int = 0
    _entries: deque[tuple[Published, bytes]] = attrs.field(factory=deque)
    #: The newest entry, checked first: every subscriber after the first hits it.
    _last: tuple[Published | None, bytes] = (None, b"")

    def __attrs_post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("FrameCache size must be >= 1")

    def frame_for(self, item: Published) -> bytes:
        last_item, last_frame = self._last
        if last_item is item:
            return last_frame
        entries = self._entries
        for cached, frame in reversed(entries):
            if cached is item:
                self._last = (item, frame)
                return frame
        frame = text_frame(item.wire)
        self.built += 1
        entries.append((item, frame))
        self._last = (item, frame)
        if len(entries) > self.size:
            entries.popleft()
        return frame


@attrs.define(eq=False)
class DeliveryCounts:
    """How the server's frames to WebSocket subscribers went out, for tests and benchmarks."""

    #: Written whole by the publisher's call, no task woken.
    direct: int = 0
    #: Written in part by the publisher's call; the writer task sent the rest.
    partial: int = 0
    #: Offered directly but declined (socket full, or a reply was being sent): queued.
    declined: int = 0
    #: Sent by a session's writer task (queued items and gaps).
    queued: int = 0


class Offer(enum.Enum):
    """What became of a frame offered to a socket by :func:`offer_frame`."""

    #: Written whole.
    WHOLE = "whole"
    #: Written in part: the rest is owed (``ReplayStream.owed``) and must go first.
    PART = "part"
    #: Not written (socket full, or a send in progress): queue it.
    DECLINED = "declined"


def offer_frame(
    stream: ReplayStream, frames: FrameCache, counts: DeliveryCounts, item: Published
) -> Offer:
    """Write ``item``'s shared frame to ``stream``'s socket now, as much as it takes.

    The publisher's call does this for each idle subscriber (see ``_websocket``);
    nothing waits and no task is woken.
    """
    frame = frames.frame_for(item)
    sent = stream.try_write(frame)
    if sent == len(frame):
        counts.direct += 1
        return Offer.WHOLE
    if not sent:
        counts.declined += 1
        return Offer.DECLINED
    counts.partial += 1
    return Offer.PART


@attrs.define(eq=False)
class ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read from ``inner``, then reads on.

    Every byte for a WebSocket client passes here: the session's replies and its
    writer's frames through :meth:`send_all`, and the fan-out whole pre-built frames through
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
            # The checkpoint first: a cancelled call must not lose what it took.
            await trio.lowlevel.checkpoint()
            size = len(self.buffered) if max_bytes is None else max_bytes
            chunk, self.buffered = self.buffered[:size], self.buffered[size:]
            return chunk
        return bytes(await self.inner.receive_some(max_bytes))

    def take_buffered(self) -> bytes:
        """The bytes still to be replayed, now, instead of through :meth:`receive_some`."""
        chunk, self.buffered = self.buffered, b""
        return chunk

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
        # Mostly uncontended (one task sends at a time, as a rule), so skip
        # the extra trip through the scheduler that ``acquire`` makes.
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()

    async def _send_owed(self) -> None:
        if self._owed:
            owed, self._owed = self._owed, b""
            await self.inner.send_all(owed)

    async def send_eof(self) -> None:
        """End our direction after anything owed, if ``inner`` can (a socket can)."""
        if not isinstance(self.inner, trio.abc.HalfCloseableStream):
            await trio.lowlevel.checkpoint()
            return
        self._senders += 1
        try:
            await self._acquire()
            try:
                await self._send_owed()
                await self.inner.send_eof()
            finally:
                self._send_lock.release()
        finally:
            self._senders -= 1

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        self.buffered = b""
        self._owed = b""
        self._socket = None
        await close_quietly(self.inner)
