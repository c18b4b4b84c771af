"""In-process pub/sub of events.

``publish`` is synchronous and never blocks: each subscription has a bounded
buffer, and what does not fit is conflated (``session_update``: at most two are
queued, the newest last) or announced to the subscriber as a :class:`Gap` and
counted.
Listeners (the broadcaster, metrics, the store) are called inline and see every
event, so aggregates are never built from a lossy stream.

A subscription may also take a direct-delivery hook (:meth:`Subscription.set_direct`):
while nothing is queued, each item is handed to it inline instead of being queued,
which lets a WebSocket writer that is idle write the frame at once instead of
being woken for it.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Self

import attrs
import trio

from ._models import SESSION_TOPIC, Event, SessionUpdate
from ._wire import EventCodec, Gap, Published

Listener = Callable[[Published], None]
#: Takes an item at once (True) or declines it (False: it is queued as usual).
DirectDelivery = Callable[[Published], bool]
Item = Published | Gap

DEFAULT_BUFFER = 1024
DEFAULT_HISTORY = 10_000


@attrs.define(eq=False)
class _PendingGap:
    """A run of drops still being extended; frozen into a Gap when read."""

    first_seq: int
    last_seq: int
    missed: int


@attrs.define(eq=False)
class Subscription:
    """One subscriber's bounded view of a topic (a task id, or ``"*"`` for all).

    Iterate it, or ``await receive()``; both end when the subscription or the
    publisher is closed and the buffer is drained.
    """

    topic: str
    capacity: int
    _publisher: Publisher | None
    _queue: deque[Published | Gap | _PendingGap] = attrs.field(factory=deque)
    _events_held: int = 0
    #: The oldest queued session_update: it keeps its place (see ``_queue_update``).
    _anchor_update: Published | None = None
    #: A newer one behind it, replaced by each newer still.
    _tail_update: Published | None = None
    _lot: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _direct: DirectDelivery | None = None
    closed: bool = False
    dropped: int = 0
    conflated: int = 0
    #: Items taken by the direct-delivery hook instead of the queue.
    delivered_direct: int = 0

    def set_direct(self, deliver: DirectDelivery | None) -> None:
        """Hand items to ``deliver`` while the queue is empty, or stop (None).

        ``deliver`` is called inline from ``publish`` and must not block or raise.
        The first item it declines is queued, and so is everything after it:
        the hook is dropped, so order is kept, and only the reader (once it has
        drained the queue) may set it again.
        """
        self._direct = None if self.closed else deliver

    @property
    def direct(self) -> DirectDelivery | None:
        """The direct-delivery hook in force, if any."""
        return self._direct

    # -- publisher side ----------------------------------------------------
    def _offer(self, item: Published) -> None:
        direct = self._direct
        if direct is not None:
            if not self._queue and direct(item):
                self.delivered_direct += 1
                return
            self._direct = None
        if isinstance(item.event, SessionUpdate):
            self._queue_update(item)
        elif self._events_held >= self.capacity:
            self._record_drop(item.seq)
            return
        else:
            self._events_held += 1
            self._queue.append(item)
        self._lot.unpark_all()

    def _queue_update(self, update: Published) -> None:
        # Moving the one queued update to the tail on each newer one would starve
        # a reader that stays behind (producer faster than it, for good): its
        # update would always be a backlog away and replaced before reached. So
        # the oldest keeps its place and is delivered when the reader gets there;
        # only a second one, behind it, is replaced. seq order is kept either way.
        anchor = self._anchor_update
        if anchor is not None and self._queue[-1] is anchor:
            # Nothing behind it to wait for: the newer one takes its place.
            self._queue.pop()
            self.conflated += 1
            anchor = self._anchor_update = None
        if anchor is None:
            self._anchor_update = update
        else:
            if self._tail_update is not None:
                self._unqueue_update(self._tail_update)
                self.conflated += 1
            self._tail_update = update
        self._queue.append(update)

    def _unqueue_update(self, update: Published) -> None:
        index = self._queue.index(update)
        del self._queue[index]
        # A stuck subscriber's queue ends [..., gap, update], and a drop after the
        # update opens a new gap: merge the two gaps its removal leaves side by side,
        # or the queue grows by one gap per session_update for as long as it is stuck.
        if 0 < index < len(self._queue):
            before, after = self._queue[index - 1], self._queue[index]
            if isinstance(before, _PendingGap) and isinstance(after, _PendingGap):
                before.last_seq = after.last_seq
                before.missed += after.missed
                del self._queue[index]

    def _record_drop(self, seq: int) -> None:
        self.dropped += 1
        if self._publisher is not None:
            self._publisher.dropped_total += 1
        tail = self._queue[-1] if self._queue else None
        if isinstance(tail, _PendingGap):
            tail.last_seq = seq
            tail.missed += 1
        else:
            self._queue.append(_PendingGap(seq, seq, 1))
        self._lot.unpark_all()

    def _push_front_gap(self, gap: Gap) -> None:
        self._queue.appendleft(gap)

    def _end(self) -> None:
        self.closed = True
        self._publisher = None
        self._direct = None
        self._lot.unpark_all()

    # -- subscriber side ---------------------------------------------------
    def __len__(self) -> int:
        return len(self._queue)

    def receive_nowait(self) -> Item:
        """The next item; ``trio.WouldBlock`` if none, ``trio.EndOfChannel`` once ended."""
        if not self._queue:
            if self.closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        item = self._queue.popleft()
        if isinstance(item, _PendingGap):
            return Gap(self.topic, item.first_seq, item.last_seq, item.missed, "overflow")
        if item is self._anchor_update:
            self._anchor_update, self._tail_update = self._tail_update, None
        elif isinstance(item, Published):
            self._events_held -= 1
        return item

    async def receive(self) -> Item:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                item = self.receive_nowait()
            except trio.WouldBlock:
                await self._lot.park()
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return item

    def drain(self) -> Iterator[Item]:
        """Everything buffered now, without waiting."""
        while self._queue:
            yield self.receive_nowait()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Unsubscribe; idempotent. Buffered items can still be read."""
        if self._publisher is not None:
            self._publisher._remove(self)
        self._end()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@attrs.define(eq=False)
class Publisher:
    """Numbers, stamps and encodes each event once, then fans it out."""

    history_size: int = DEFAULT_HISTORY
    buffer_size: int = DEFAULT_BUFFER
    codec: EventCodec = attrs.field(factory=EventCodec)
    # A partial, not a lambda: read for every event, and calls straight into C.
    clock: Callable[[], datetime] = attrs.field(
        factory=lambda: functools.partial(datetime.now, UTC)
    )
    last_seq: int = 0
    dropped_total: int = 0
    published_total: int = 0
    closed: bool = False
    _history: deque[Published] = attrs.field(init=False)
    _evicted_through: int = 0
    _topics: dict[str, set[Subscription]] = attrs.field(factory=dict)
    # Replaced, never mutated: a publish iterates the tuple it started with.
    _listeners: tuple[Listener, ...] = ()
    _publishing: bool = False
    _after_publish: list[Callable[[], object]] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        if self.history_size < 1 or self.buffer_size < 1:
            raise ValueError("history_size and buffer_size must be >= 1")
        self._history = deque()
        # A publisher continuing a stored session starts after its last seq;
        # replays from before that are announced as a history gap.
        self._evicted_through = self.last_seq

    # -- publishing --------------------------------------------------------
    def _stamp(self, event: Event) -> Published:
        self.last_seq += 1
        return self.codec.publish(self.last_seq, self.clock(), event)

    def publish(self, event: Event) -> Published | None:
        """Deliver ``event`` to listeners and subscribers; None once closed."""
        # Runs for every event: attribute reads are hoisted into locals, and the
        # listeners are a tuple replaced on change, so nothing is copied per event.
        if self.closed:
            return None
        self.last_seq = seq = self.last_seq + 1
        item = self.codec.publish(seq, self.clock(), event)
        self.published_total += 1
        if not isinstance(event, SessionUpdate):
            # Snapshots are not replayed: a fresh one follows every subscribe.
            history = self._history
            history.append(item)
            if len(history) > self.history_size:
                self._evicted_through = history.popleft().seq
        outermost = not self._publishing
        self._publishing = True
        try:
            for listener in self._listeners:
                listener(item)
            topics = self._topics
            if topics:
                self._offer_to_topics(topics, item)
        finally:
            if outermost:
                self._publishing = False
        if outermost and self._after_publish:
            self._run_after_publish()
        return item

    @staticmethod
    def _offer_to_topics(topics: dict[str, set[Subscription]], item: Published) -> None:
        subs = topics.get(SESSION_TOPIC)
        if subs:
            for sub in tuple(subs):
                sub._offer(item)
        task_id = item.event.task_id
        if task_id != SESSION_TOPIC:
            subs = topics.get(task_id)
            if subs:
                for sub in tuple(subs):
                    sub._offer(item)

    def after_publish(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the event being published has reached everyone.

        For listeners that publish in reaction to an event: publishing from
        inside the listener would deliver the reaction before its cause.
        Outside a publish, ``callback`` runs at once.
        """
        self._after_publish.append(callback)
        if not self._publishing:
            self._run_after_publish()

    def _run_after_publish(self) -> None:
        while self._after_publish:
            callbacks, self._after_publish = self._after_publish, []
            for callback in callbacks:
                callback()

    def deliver_to(self, subscription: Subscription, event: Event) -> Published | None:
        """Send ``event`` to one subscription only (e.g. its initial snapshot)."""
        if self.closed or subscription.closed:
            return None
        item = self._stamp(event)
        subscription._offer(item)
        return item

    # -- subscribing -------------------------------------------------------
    def subscribe(
        self, topic: str, *, since: int | None = None, buffer_size: int | None = None
    ) -> Subscription:
        """Subscribe to ``topic``; with ``since``, replay kept events after that seq first."""
        capacity = self.buffer_size if buffer_size is None else buffer_size
        if capacity < 1:
            raise ValueError("buffer_size must be >= 1")
        if self.closed:
            sub = Subscription(topic, capacity, None)
            sub._end()
            return sub
        sub = Subscription(topic, capacity, self)
        if since is not None:
            self._replay(sub, since)
        self._topics.setdefault(topic, set()).add(sub)
        return sub

    def _replay(self, sub: Subscription, since: int) -> None:
        if since < 0:
            raise ValueError("since must be >= 0")
        if since < self._evicted_through:
            sub._queue.append(Gap(sub.topic, since + 1, self._evicted_through, None, "history"))
        for item in self._history:
            if item.seq <= since:
                continue
            if sub.topic == SESSION_TOPIC or item.event.task_id == sub.topic:
                # Replay may exceed the live capacity; it is bounded by history_size.
                sub._queue.append(item)
                sub._events_held += 1

    def _remove(self, sub: Subscription) -> None:
        subs = self._topics.get(sub.topic)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._topics[sub.topic]

    def subscriber_count(self, topic: str | None = None) -> int:
        if topic is not None:
            return len(self._topics.get(topic, ()))
        return sum(len(subs) for subs in self._topics.values())

    @property
    def topic_count(self) -> int:
        return len(self._topics)

    def history_since(self, since: int) -> list[Published]:
        return [item for item in self._history if item.seq > since]

    # -- listeners ---------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` inline with every published event; returns its remover."""
        self._listeners = (*self._listeners, listener)

        def remove() -> None:
            listeners = list(self._listeners)
            if listener in listeners:
                listeners.remove(listener)
                self._listeners = tuple(listeners)

        return remove

    # -- closing -----------------------------------------------------------
    def close(self) -> None:
        """End every subscription; later publishes are no-ops. Idempotent."""
        if self.closed:
            return
        self.closed = True
        topics, self._topics = self._topics, {}
        for subs in topics.values():
            for sub in subs:
                sub._end()
