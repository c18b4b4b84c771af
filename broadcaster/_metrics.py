"""Prometheus metrics, fed by the same event stream as the broadcaster.

Everything but ``runcast_websocket_connections`` is kept in plain dicts by a
publisher listener and turned into metric families only when scraped, so an
event costs a few dict updates, not a prometheus_client lock per metric.
No label carries a task or session id; the ``model`` label, whose values come
from task output, keeps the first ``max_models`` distinct names and counts the
rest as ``other``. Every value is finite: the per-model usage totals are read
through the caps the session's totals are (``_totals``), the duration
histogram's sum through the largest float; capped when scraped, so an event
costs what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

import attrs
from prometheus_client import CollectorRegistry, Gauge

from events import (
    END_STATES,
    EVENT_TYPES,
    Published,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskUsage,
)

from ._aggregate import TRIGGERS, SessionAggregate, Trigger
from ._exceptions import BroadcasterConfigError
from ._exposition import RuncastCollector
from ._tallies import OTHER_MODEL, Histogram, ModelTotals

DEFAULT_MAX_MODELS: Final = 50
UNKNOWN_MODEL: Final = "unknown"
#: Agent runs take from seconds to hours.
DURATION_BUCKETS: Final = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


_END_EVENTS: Final[dict[type, str]] = {
    TaskCompleted: "completed",
    TaskFailed: "failed",
    TaskCancelled: "cancelled",
}


@attrs.define(eq=False)
class RuncastMetrics:
    """Every ``runcast_*`` metric, registered on ``registry`` and fed by ``publisher``.

    The api moves ``websocket_connections`` itself. Call :meth:`close` to
    detach the listener and unregister (idempotent).
    """

    registry: CollectorRegistry
    publisher: Publisher
    max_models: int = DEFAULT_MAX_MODELS
    websocket_connections: Gauge = attrs.field(init=False)
    aggregate: SessionAggregate = attrs.field(init=False)
    tasks_ended: dict[str, int] = attrs.field(init=False)
    models: dict[str, ModelTotals] = attrs.field(init=False, factory=dict)
    model_overflow_total: int = 0
    task_durations: Histogram = attrs.field(init=False)
    session_updates: dict[Trigger, int] = attrs.field(init=False)
    events_published: dict[str, int] = attrs.field(init=False)
    _collector: RuncastCollector | None = None
    _remove_listener: Callable[[], None] | None = None
    #: True while a broadcaster applies events to its aggregate (shared with us)
    #: and hands them on through :meth:`count_event` instead of our listener.
    following: bool = False
    _closed: bool = False

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_models, bool) or not isinstance(self.max_models, int):
            raise BroadcasterConfigError(f"max_models must be an int, got {self.max_models!r}")
        if self.max_models < 1:
            raise BroadcasterConfigError(f"max_models must be >= 1, got {self.max_models}")
        self.aggregate = SessionAggregate(session_id="metrics")
        self.tasks_ended = {state: 0 for state in sorted(END_STATES)}
        self.task_durations = Histogram(DURATION_BUCKETS)
        self.session_updates = dict.fromkeys(TRIGGERS, 0)
        self.events_published = dict.fromkeys(EVENT_TYPES, 0)
        try:
            self.websocket_connections = Gauge(
                "runcast_websocket_connections",
                "WebSocket clients connected now.",
                registry=self.registry,
            )
        except ValueError as exc:
            raise BroadcasterConfigError(
                f"the registry already holds runcast metrics (close the other first): {exc}"
            ) from exc
        collector = RuncastCollector(self)
        try:
            self.registry.register(collector)
        except ValueError as exc:
            self.registry.unregister(self.websocket_connections)
            raise BroadcasterConfigError(
                f"the registry already holds a runcast_* metric: {exc}"
            ) from exc
        self._collector = collector
        self._remove_listener = self.publisher.add_listener(self.on_event)

    def close(self) -> None:
        """Stop listening and unregister every metric; idempotent."""
        self._closed = True
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._collector is not None:
            self.registry.unregister(self._collector)
            self.registry.unregister(self.websocket_connections)
            self._collector = None

    # -- feeding ---------------------------------------------------------------
    def on_event(self, item: Published) -> None:
        """The listener (unless a broadcaster feeds us): apply, then count."""
        event = item.event
        trigger = None if type(event) is SessionUpdate else self.aggregate.apply(item)
        self.count_event(item, trigger)

    def follow(self, aggregate: SessionAggregate) -> Callable[[], None] | None:
        """Take ``aggregate`` as ours, fed by its owner through :meth:`count_event`.

        A broadcaster on the same publisher builds the same aggregate from the
        same events; sharing it saves applying every event twice. Only before
        anything was counted or restored (None otherwise: we keep listening).
        The returned function gives the feeding back to our own listener, which
        goes on applying events to the shared aggregate (its owner has stopped).
        """
        if self.following or self._remove_listener is None or self.aggregate.restored:
            return None
        if any(self.events_published.values()):
            return None
        self._remove_listener()
        self._remove_listener = None
        self.aggregate = aggregate
        self.following = True

        def stop_following() -> None:
            if not self.following:
                return
            self.following = False
            if not self._closed:
                self._remove_listener = self.publisher.add_listener(self.on_event)

        return stop_following

    def count_event(self, item: Published, trigger: Trigger | None) -> None:
        """Count ``item``, already applied to our aggregate (``trigger``: what it caused)."""
        if self._closed:
            return
        event = item.event
        kind = type(event)
        counts = self.events_published
        name = event.event_name
        counts[name] = counts.get(name, 0) + 1
        if kind is TaskUsage:
            self._add_usage(cast(TaskUsage, event))
        elif trigger == "task_end":
            # Counted by the aggregate: not a duplicate, and not a retry.
            end_state = _END_EVENTS.get(kind)
            if end_state is not None:
                self.tasks_ended[end_state] += 1
                if end_state != "cancelled":
                    self.task_durations.observe(
                        cast(TaskCompleted | TaskFailed, event).duration_seconds
                    )

    def _add_usage(self, event: TaskUsage) -> None:
        totals = self._model_totals(event.model)
        totals.tokens[0] += event.input_tokens
        totals.tokens[1] += event.output_tokens
        totals.tokens[2] += event.cache_read_tokens
        totals.tokens[3] += event.cache_write_tokens
        if event.cost_usd is None:
            totals.unpriced_tokens += event.total_tokens
        else:
            totals.cost_usd += event.cost_usd

    def _model_totals(self, model: str) -> ModelTotals:
        label = model or UNKNOWN_MODEL
        totals = self.models.get(label)
        if totals is not None:
            return totals
        if len(self.models) >= self.max_models + (OTHER_MODEL in self.models):
            self.model_overflow_total += 1
            label = OTHER_MODEL
        return self.models.setdefault(label, ModelTotals())

    def count_session_update(self, trigger: Trigger) -> None:
        """Called by the broadcaster for each ``session_update`` it sends."""
        self.session_updates[trigger] += 1

    def restore(self, previous: SessionUpdate) -> None:
        """Seed the session gauges (duration, pause, budget) from a stored snapshot.

        While following a broadcaster, its restore of the shared aggregate did it.
        """
        if not self.following:
            self.aggregate.restore(previous)
