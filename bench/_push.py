"""A what-if for fan-out: write each frame straight to idle subscribers' sockets.

runcast's WebSocket writer (``api/_websocket.py``) sends every frame to every
subscriber through its own task: the publisher unparks it, ``receive()`` yields
once more, trio-websocket takes its send lock (a checkpoint) and
``send_all`` yields again after the write: four trips through the scheduler
per frame per subscriber.  ``websockets.broadcast()`` instead writes to each
transport synchronously.

This module measures the same idea in runcast, by patching the server for
the ``runcast-push`` kind of the fan-out benchmark only:

* each ``Published`` is framed once (one-entry cache: every subscriber gets
  the same object in turn);
* while a subscriber's writer is idle (its queue empty), the publisher's
  ``_offer`` writes the frame with one non-blocking ``send`` on the socket;
  if trio-websocket is sending (its lock is held) or the write would block,
  the item is queued as before and direct writes stop until the writer has
  drained the queue, so order is kept; a partial write leaves its remainder
  for the writer to send first.

It reaches into private attributes of trio-websocket (``_stream``,
``_stream_lock``, ``_close_reason``) and of runcast (``Subscription._lot``):
fine for a measurement, not for production.  The production shape is in
bench/README.md: a push hook on ``Subscription`` and a frame cache on
``Published`` (events), and the direct write in ``api/_websocket.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed

import api._websocket as websocket_module
from events import Published, Subscription

from ._wsframes import frame

Pusher = Callable[[Published], bool]


def _socket_fd(ws: Any) -> int | None:
    stream = getattr(ws, "_stream", None)
    inner = getattr(stream, "inner", stream)
    sock = getattr(inner, "socket", None)
    return None if sock is None else int(sock.fileno())


@contextmanager
def push_writes() -> Iterator[None]:
    """Patch ``Subscription._offer`` and ``WebSocketSession._write_loop`` for the block."""
    pushers: dict[Subscription, Pusher] = {}
    remainders: dict[object, bytes] = {}
    cache: list[Any] = [None, b""]  # [Published, its frame]

    def framed(item: Published) -> bytes:
        if cache[0] is not item:
            cache[0], cache[1] = item, frame(item.wire.encode())
        data: bytes = cache[1]
        return data

    original_offer = Subscription._offer

    def offer(self: Subscription, item: Published) -> None:
        push = pushers.get(self)
        if push is not None:
            if not len(self) and push(item):
                return
            pushers.pop(self, None)
        original_offer(self, item)

    def make_pusher(session: Any, subscription: Subscription, fd: int) -> Pusher:
        ws = session.ws

        def push(item: Published) -> bool:
            if ws._stream_lock.locked() or ws._close_reason is not None:
                return False
            data = framed(item)
            try:
                sent = os.write(fd, data)
            except OSError:  # would block, or broken: the writer's path handles it
                return False
            if sent < len(data):
                remainders[session] = data[sent:]
                pushers.pop(subscription, None)
                subscription._lot.unpark_all()
            return True

        return push

    async def write_loop(self: Any, done: trio.CancelScope) -> None:
        # api/_websocket.py's loop, with the idle wait also offering direct writes.
        fd = _socket_fd(self.ws)
        try:
            while True:
                rest = remainders.pop(self, None)
                if rest is not None:
                    async with self.ws._stream_lock:
                        await self.ws._stream.send_all(rest)
                    continue
                subscription = self._subscription
                if subscription is None:
                    if self._closing:
                        return  # everything queued was sent
                    await self._subscription_changed.wait()
                    continue
                try:
                    item = subscription.receive_nowait()
                except trio.WouldBlock:
                    if fd is not None and not self._closing:
                        pushers[subscription] = make_pusher(self, subscription, fd)
                    try:
                        await subscription._lot.park()
                    finally:
                        pushers.pop(subscription, None)
                    continue
                except trio.EndOfChannel:
                    if subscription is self._subscription:
                        self._subscription = None
                    continue
                if subscription is self._subscription:
                    await self.ws.send_message(item.wire)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            done.cancel()

    session_class = websocket_module.WebSocketSession
    original_write_loop = session_class._write_loop
    Subscription._offer = offer  # type: ignore[method-assign]
    session_class._write_loop = write_loop  # type: ignore[method-assign]
    try:
        yield
    finally:
        Subscription._offer = original_offer  # type: ignore[method-assign]
        session_class._write_loop = original_write_loop  # type: ignore[method-assign]
