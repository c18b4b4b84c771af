"""A publisher for events numbered and stamped elsewhere: a cluster's event stream.

Every serve node of a cluster session follows the same Redis stream, and each
entry there already has its place in the session's order (the stream's
``seq``) and its time. :class:`RelayPublisher` publishes each with that seq and
time, so every node gives the same event the same seq and a client can carry
a ``since`` from one node to another.

The local broadcaster's ``session_update`` snapshots take no seq of their own
(one would collide with a stream event's on another node): they carry the seq
of the last event folded into them, and, as on a single process, they are
never replayed. A client therefore sees a snapshot's seq equal to the event
before it.

:meth:`Publisher.publish` stays as it was for a single process (it runs for
every event there); the delivery here repeats its few lines rather than
slowing it with a call or a branch.

A node that follows the stream may be behind another one: a client that moves
from the node ahead with ``since`` set to a seq this node has not read yet
waits for it (:meth:`RelayPublisher.wait_for_seq`) when the stream holds that
seq, instead of being told it comes from another server run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import attrs
import trio

from ._models import Event, SessionUpdate
from ._publisher import Publisher
from ._wire import Published

#: Given a seq past what was published: the stream's seq counter (read afresh
#: unless it is already known to reach that seq), or None when it cannot be read.
StreamCounter = Callable[[int], Awaitable[int | None]]


@attrs.frozen
class SeqWait:
    """How :meth:`RelayPublisher.wait_for_seq` ended."""

    #: The publisher has published through the seq waited for.
    reached: bool
    #: Its ``last_seq`` then.
    last_seq: int
    #: The stream's seq counter as the node knew it (None: it could not be read).
    stream_seq: int | None


@attrs.define(eq=False)
class RelayPublisher(Publisher):
    """Events arrive through :meth:`publish_at`; :meth:`publish` takes snapshots only."""

    #: Says how far the stream goes (see :data:`StreamCounter`); set by whoever
    #: follows it. None: nothing past ``last_seq`` is known to exist.
    stream_counter: StreamCounter | None = None
    #: Tasks in :meth:`wait_for_seq`, by the seq they wait for (one lot per seq).
    _seq_waits: dict[int, trio.lowlevel.ParkingLot] = attrs.field(factory=dict)
    #: The lowest seq in ``_seq_waits``: publish_at compares with it and no more.
    _next_wake: float = float("inf")

    async def wait_for_seq(self, seq: int) -> SeqWait:
        """Until this publisher has published through ``seq``, if the stream holds it.

        Returns at once when it has already; at once, not reached, when the
        stream's counter (asked of ``stream_counter``) is below ``seq`` or cannot
        be read; else once ``publish_at`` reaches ``seq`` (not reached: the
        publisher closed first). The caller bounds the wait (``trio.move_on_after``).
        """
        if seq <= self.last_seq or self.closed:
            return SeqWait(seq <= self.last_seq, self.last_seq, self.last_seq)
        counter = self.stream_counter
        stream_seq = await counter(seq) if counter is not None else self.last_seq
        if stream_seq is not None and seq <= stream_seq:
            await self._published_through(seq)
        return SeqWait(seq <= self.last_seq, self.last_seq, stream_seq)

    async def _published_through(self, seq: int) -> None:
        lot = self._seq_waits.get(seq)
        if lot is None:
            lot = self._seq_waits[seq] = trio.lowlevel.ParkingLot()
            self._next_wake = min(self._next_wake, seq)
        try:
            while self.last_seq < seq and not self.closed:
                await lot.park()
        finally:
            if not lot and self._seq_waits.get(seq) is lot:
                del self._seq_waits[seq]
                self._next_wake = min(self._seq_waits, default=float("inf"))

    def _wake_through(self, seq: int) -> None:
        for waited in [waited for waited in self._seq_waits if waited <= seq]:
            self._seq_waits.pop(waited).unpark_all()
        self._next_wake = min(self._seq_waits, default=float("inf"))

    def close(self) -> None:
        super().close()
        for lot in self._seq_waits.values():
            lot.unpark_all()
        self._seq_waits.clear()
        self._next_wake = float("inf")

    def publish_at(self, seq: int, time: datetime, event: Event) -> Published | None:
        """Deliver ``event`` as number ``seq``, stamped ``time``; None once closed.

        ``seq`` must be past ``last_seq`` (``ValueError`` otherwise: the caller
        skips what it has already published). A jump past ``last_seq + 1``
        means the events between are unknown here (trimmed from the stream
        before this publisher read them): a replay from before the jump then
        gets a history gap for them instead of silently skipping them.
        """
        if self.closed:
            return None
        if isinstance(event, SessionUpdate):
            raise ValueError("publish_at takes stream events; publish a session_update")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq <= self.last_seq:
            raise ValueError(f"seq must be an int > last_seq ({self.last_seq}), got {seq!r}")
        if seq > self.last_seq + 1:
            self._history.clear()
            self._evicted_through = seq - 1
        self.last_seq = seq
        item = self.codec.publish(seq, time, event)
        self._deliver(item, keep=True)
        if seq >= self._next_wake:
            self._wake_through(seq)
        return item

    def publish(self, event: Event) -> Published | None:
        """Deliver a ``session_update`` snapshot, numbered with the last event's seq."""
        if not isinstance(event, SessionUpdate):
            raise TypeError(
                f"a relay publisher takes {event.event_name} events through publish_at "
                "(with the seq and time of the stream)"
            )
        if self.closed:
            return None
        item = self._stamp(event)
        self._deliver(item, keep=False)
        return item

    def _stamp(self, event: Event) -> Published:
        # Snapshots (publish, deliver_to) take no seq: see the module docstring.
        return self.codec.publish(self.last_seq, self.clock(), event)

    def _deliver(self, item: Published, *, keep: bool) -> None:
        self.published_total += 1
        if keep:
            history = self._history
            history.append(item)
            if len(history) > self.history_size:
                self._evicted_through = history.popleft().seq
        outermost = not self._publishing
        self._publishing = True
        try:
            for listener in self._listeners:
                listener(item)
            if self._topics:
                self._offer_to_topics(self._topics, item)
        finally:
            if outermost:
                self._publishing = False
        if outermost and self._after_publish:
            self._run_after_publish()
