"""The SessionBroadcaster: pushes ``session_update`` when the session changes.

It listens to the publisher (inline, so it never misses an event) and folds
each event into a :class:`SessionAggregate`. The listener never publishes
itself — a ``session_update`` published from inside ``publish`` would reach
subscribers before the event that caused it — it only marks what is pending
and wakes the broadcaster's own tasks:

* the flusher sends an update at once for task starts and ends, pause/resume
  and budget changes, then at most one more per ``min_spacing`` while such
  triggers keep coming (a burst of 1,000 starts gives a handful of updates);
  usage alone is sent ``usage_delay`` after it was first recorded, so a stream
  of usage records costs at most one update per ``usage_delay``;
* the ticker sends one every ``interval`` seconds, on a period counted from
  the moment the first task started running, and only while one runs.

Both tasks live in the nursery of :func:`serve_broadcaster`, so no task's
cancellation can stop them, and nothing is sent while the session is idle.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Final

import attrs
import trio

from events import SESSION_TOPIC, Published, Publisher, SessionUpdate, Subscription

from ._aggregate import TRIGGERS, SessionAggregate, Trigger
from ._exceptions import BroadcasterConfigError
from ._metrics import RuncastMetrics

DEFAULT_INTERVAL: Final = 10.0
#: Smallest gap between two flushed updates; bounds a burst and keeps the
#: first update of a quiet period immediate.
DEFAULT_MIN_SPACING: Final = 0.05
#: How long usage may wait to ride along with other changes (bound: 1 s).
DEFAULT_USAGE_DELAY: Final = 0.5
#: How long a due update may wait for the flusher's turn while events keep
#: coming in the same turn of the loop (1,000 tasks ending in one batch); then
#: it goes out right after the event at hand.
DEFAULT_MAX_HOLD: Final = 0.02


def _nothing() -> None:
    return None


def _positive_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BroadcasterConfigError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise BroadcasterConfigError(f"{name} must be finite and > 0 seconds, got {value}")
    return float(value)


@attrs.define(eq=False)
class SessionBroadcaster:
    """Keeps the session aggregate and publishes ``session_update`` events.

    Build it with :func:`serve_broadcaster`; one made directly aggregates and
    answers :meth:`snapshot`, but only broadcasts once its tasks run.
    """

    publisher: Publisher
    metrics: RuncastMetrics | None = None
    interval: float = attrs.field(default=DEFAULT_INTERVAL)
    session_id: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    min_spacing: float = DEFAULT_MIN_SPACING
    usage_delay: float = DEFAULT_USAGE_DELAY
    max_hold: float = DEFAULT_MAX_HOLD
    #: A cluster serve node's: durations count from the events' own times
    #: (``SessionAggregate.wall_clock``).
    wall_clock: Callable[[], datetime] | None = None
    aggregate: SessionAggregate = attrs.field(init=False)
    #: Updates sent, by the trigger that caused each (the first pending one).
    updates_sent: dict[Trigger, int] = attrs.field(init=False)
    _pending: Trigger | None = None
    _pending_immediate: bool = False
    _pending_since: float = 0.0
    _inline_flush_asked: bool = False
    _usage_deadline: float | None = None
    #: Since when a pending update is held (max(its flush deadline, when it
    #: became pending); inf: none is): after ``max_hold`` of it, it goes out right
    #: after the event at hand. Kept up to date when either moves, not computed
    #: per event.
    _held_since: float = math.inf
    #: The trio clock (``serve_broadcaster`` binds its clock's method: one call
    #: instead of three per event).
    _clock: Callable[[], float] = trio.current_time
    _last_broadcast: float = -math.inf
    _flush_wakeup: trio.Event = attrs.field(factory=trio.Event)
    _ticker_wakeup: trio.Event = attrs.field(factory=trio.Event)
    _ticker_scope: trio.CancelScope | None = None
    _ticker_base: float = 0.0
    # The metrics that share our aggregate while we run (see RuncastMetrics.follow).
    _fed_metrics: RuncastMetrics | None = None

    def __attrs_post_init__(self) -> None:
        self.interval = _positive_seconds("interval", self.interval)
        self.min_spacing = _positive_seconds("min_spacing", self.min_spacing)
        self.usage_delay = _positive_seconds("usage_delay", self.usage_delay)
        self.max_hold = _positive_seconds("max_hold", self.max_hold)
        if not isinstance(self.session_id, str) or not 0 < len(self.session_id) <= 256:
            raise BroadcasterConfigError(
                f"session_id must be a non-empty string of <= 256 chars, got {self.session_id!r}"
            )
        self.aggregate = SessionAggregate(session_id=self.session_id, wall_clock=self.wall_clock)
        self.updates_sent = dict.fromkeys(TRIGGERS, 0)

    # -- public API ------------------------------------------------------------
    def snapshot(self) -> SessionUpdate:
        """The current aggregate, without broadcasting it."""
        return self.aggregate.snapshot()

    def subscribe_session(
        self, *, since: int | None = None, buffer_size: int | None = None
    ) -> Subscription:
        """Subscribe to ``"*"``; the current snapshot follows at once, to this subscriber only."""
        subscription = self.publisher.subscribe(SESSION_TOPIC, since=since, buffer_size=buffer_size)
        if self.publisher.deliver_to(subscription, self.snapshot()) is not None:
            self._count("subscribe")
        return subscription

    def restore(self, previous: SessionUpdate) -> None:
        """Continue a stored session: its totals, duration, id, start, pause and budget.

        Call it before the executor starts (``RestoreError`` otherwise). The
        metrics' gauges are restored too; their counters count this process.
        """
        self.aggregate.restore(previous)
        self.session_id = self.aggregate.session_id
        if self.metrics is not None:
            self.metrics.restore(previous)

    def flush(self) -> None:
        """Send the pending update now, if a change is waiting to be sent."""
        if self._pending is not None:
            self._broadcast(self._pending)

    def feed_metrics(self) -> Callable[[], None]:
        """Let ``metrics`` share our aggregate (one apply per event, not two).

        Returns the function that hands the metrics back their own listener;
        without metrics, or metrics that cannot follow, it does nothing.
        """
        metrics = self.metrics
        release = None
        if metrics is not None and metrics.publisher is self.publisher:
            release = metrics.follow(self.aggregate)
        if release is None:
            return _nothing
        self._fed_metrics = metrics

        def stop_feeding() -> None:
            self._fed_metrics = None
            release()

        return stop_feeding

    def set_stale(self, stale: bool) -> None:
        """Say whether the numbers may be behind (a cluster node's stream is out of
        reach, or not caught up); a change goes out at once, like a pause."""
        if stale == self.aggregate.stale:
            return
        self.aggregate.stale = stale
        self._mark_pending("stale", self._clock(), False)

    @property
    def ticker_running(self) -> bool:
        return self._ticker_scope is not None

    # -- listener (inline in Publisher.publish; must not publish) ---------------
    def on_event(self, item: Published) -> None:
        fed = self._fed_metrics
        if type(item.event) is SessionUpdate:
            if fed is not None:
                fed.count_event(item, None)
            return
        aggregate = self.aggregate
        trigger = aggregate.apply(item)
        if fed is not None:
            fed.count_event(item, trigger)
        if trigger is None:
            return
        now = self._clock()
        if now - self._held_since >= self.max_hold and not self._inline_flush_asked:
            self._inline_flush_asked = True
            self.publisher.after_publish(self._flush_if_due)
        # Only a start takes the running count up, and only an end takes it down.
        from_idle = False
        if trigger == "task_start":
            if aggregate.tasks_running == 1:
                from_idle = True
                self._ticker_base = now
                self._ticker_wakeup.set()
        elif (
            trigger == "task_end"
            and aggregate.tasks_running == 0
            and self._ticker_scope is not None
        ):
            self._ticker_scope.cancel()
        self._mark_pending(trigger, now, from_idle)

    def _mark_pending(self, trigger: Trigger, now: float, from_idle: bool) -> None:
        if self._pending is None:
            self._pending = trigger
            self._pending_since = now
        elif self._pending_immediate or (trigger == "usage" and self._usage_deadline is not None):
            # Common in a burst: nothing that sets the flush deadline changes
            # (and a start from idle asks for no inline flush while one is due).
            return
        if trigger == "usage":
            if self._usage_deadline is None:
                self._usage_deadline = now + self.usage_delay
        elif not self._pending_immediate:
            self._pending_immediate = True
            # An immediate trigger names the update, even if usage came first.
            self._pending = trigger
            if from_idle and self._flush_deadline() <= now:
                # The first start after idle goes out as soon as its event has been
                # delivered, not when the loop next yields: a caller submitting 1,000
                # tasks in one go may not yield for tens of milliseconds
                # (bench/HISTORY.md#the-first-start-after-idle-goes-out-inline-kept).
                # (Elsewhere, waiting for the yield lets an end and the start it frees
                # share one update.)
                self._inline_flush_asked = True
                self.publisher.after_publish(self._flush_if_due)
        self._update_hold()
        self._flush_wakeup.set()

    def _update_hold(self) -> None:
        if self._pending is None:
            self._held_since = math.inf
        else:
            self._held_since = max(self._flush_deadline(), self._pending_since)

    def _flush_if_due(self) -> None:
        self._inline_flush_asked = False
        if self._pending is not None and self._flush_deadline() <= trio.current_time():
            self._broadcast(self._pending)

    # -- sending -------------------------------------------------------------------
    def _broadcast(self, trigger: Trigger) -> None:
        update = self.snapshot()
        self._last_broadcast = trio.current_time()
        self._pending = None
        self._pending_immediate = False
        self._usage_deadline = None
        self._held_since = math.inf
        if self.publisher.publish(update) is not None:
            self._count(trigger)

    def _count(self, trigger: Trigger) -> None:
        self.updates_sent[trigger] += 1
        if self.metrics is not None:
            self.metrics.count_session_update(trigger)

    def _flush_deadline(self) -> float:
        if self._pending_immediate:
            return self._last_broadcast + self.min_spacing
        if self._usage_deadline is not None:
            return max(self._usage_deadline, self._last_broadcast + self.min_spacing)
        return math.inf

    async def run_flusher(self) -> None:
        while True:
            deadline = self._flush_deadline()
            if deadline <= trio.current_time() and self._pending is not None:
                self._broadcast(self._pending)
                continue
            self._flush_wakeup = trio.Event()
            with trio.move_on_at(deadline):
                await self._flush_wakeup.wait()

    async def run_ticker(self) -> None:
        while True:
            if self.aggregate.tasks_running == 0:
                self._ticker_wakeup = trio.Event()
                await self._ticker_wakeup.wait()
                continue
            with trio.CancelScope() as scope:
                self._ticker_scope = scope
                base, ticks = self._ticker_base, 0
                try:
                    while True:
                        ticks += 1
                        await trio.sleep_until(base + ticks * self.interval)
                        self._broadcast("tick")
                finally:
                    self._ticker_scope = None


async def serve_broadcaster(
    publisher: Publisher,
    *,
    metrics: RuncastMetrics | None = None,
    interval: float = DEFAULT_INTERVAL,
    session_id: str | None = None,
    wall_clock: Callable[[], datetime] | None = None,
    task_status: trio.TaskStatus[SessionBroadcaster] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a :class:`SessionBroadcaster` until cancelled; ``started`` hands it over.

    ``wall_clock``: count the duration from the events' own times (a cluster
    serve node, which may read them long after they happened).
    """
    broadcaster = SessionBroadcaster(
        publisher,
        metrics=metrics,
        interval=interval,
        session_id=session_id if session_id is not None else uuid.uuid4().hex,
        wall_clock=wall_clock,
    )
    broadcaster._clock = trio.lowlevel.current_clock().current_time
    remove_listener = publisher.add_listener(broadcaster.on_event)
    stop_feeding_metrics = broadcaster.feed_metrics()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(broadcaster.run_flusher)
            nursery.start_soon(broadcaster.run_ticker)
            task_status.started(broadcaster)
    finally:
        remove_listener()
        stop_feeding_metrics()
        # A change still waiting out the coalescing window goes out now, so
        # subscribers are left with the final counts (publish is synchronous).
        broadcaster.flush()
