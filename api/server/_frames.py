"""WebSocket frames built once per event and shared by every subscriber.

A server's text frame (RFC 6455 section 5.2) is the same bytes for every
client: servers do not mask, and this server negotiates no extension
(trio-websocket accepts with none, so never permessage-deflate), so each
event's frame is built once and written as is to every idle subscriber.
"""

from __future__ import annotations

import struct
from collections import deque

import attrs

from events import Published

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
    #: Offered directly but declined (socket full, or trio-websocket was sending): queued.
    declined: int = 0
    #: Sent by a session's writer task (queued items and gaps).
    queued: int = 0
