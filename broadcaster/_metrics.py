"""Prometheus metrics, fed by the same event stream as the broadcaster.

Everything but ``runcast_websocket_connections`` is kept in plain dicts by a
publisher listener and turned into metric families only when scraped, so an
event costs a few dict updates, not a prometheus_client lock per metric.
No label carries a task or session id; the ``model`` and ``provider`` labels,
whose values come from task output, keep the first ``max_models`` distinct
(model, provider) pairs and count the rest as ``other``/``other``. The queue
wait histogram keeps the queue time of at most ``max_queue_waits`` waiting tasks
and counts the attempts it could not measure. Every value is finite: the
per-model usage totals are read through the caps the session's totals are
(``_totals``), the histograms' sums through the largest float; capped when
scraped, so an event costs what it did.

The process collector (``process_*``: CPU, memory, file descriptors, start
time) is registered on the same registry and unregistered with the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

import attrs
from prometheus_client import CollectorRegistry, Gauge, ProcessCollector

from events import (
    END_STATES,
    EVENT_TYPES,
    Published,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskUsage,
)

from ._aggregate import TRIGGERS, SessionAggregate, Trigger
from ._exceptions import BroadcasterConfigError
from ._exposition import RuncastCollector
from ._tallies import OTHER_MODEL, Histogram, ModelTotals, QueueWaits

DEFAULT_MAX_MODELS: Final = 50
#: Waiting tasks whose queue time is kept: ~100 bytes each, so a queue of that
#: many tasks costs ~10 MB here, beside its records in the executor.
DEFAULT_MAX_QUEUE_WAITS: Final = 100_000
#: The ``model`` or ``provider`` label of usage that names none.
UNKNOWN_MODEL: Final = "unknown"
#: Agent runs take from seconds to hours.
DURATION_BUCKETS: Final = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: A free slot takes a task at once (milliseconds); a full executor, up to hours.
QUEUE_WAIT_BUCKETS: Final = (0.01, 0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)


_END_EVENTS: Final[dict[type, str]] = {
    TaskCompleted: "completed",
    TaskFailed: "failed",
    TaskCancelled: "cancelled",
}


@attrs.define(eq=False)
class RuncastMetrics:
    """Every ``runcast_*`` metric (and ``process_*``) on ``registry``, fed by ``publisher``.

    The api moves ``websocket_connections`` itself. Call :meth:`close` to
    detach the listener and unregister (idempotent).
    """

    registry: CollectorRegistry
    publisher: Publisher
    max_models: int = DEFAULT_MAX_MODELS
    max_queue_waits: int = DEFAULT_MAX_QUEUE_WAITS
    websocket_connections: Gauge = attrs.field(init=False)
    aggregate: SessionAggregate = attrs.field(init=False)
    tasks_ended: dict[str, int] = attrs.field(init=False)
    #: Ended tasks an operator retried, by the end they left (``runcast_tasks``
    #: minus these is the tasks whose latest end it is, as ``session_update`` counts).
    tasks_retried: dict[str, int] = attrs.field(init=False)
    #: Usage by (model, provider) label pair.
    models: dict[tuple[str, str], ModelTotals] = attrs.field(init=False, factory=dict)
    model_overflow_total: int = 0
    task_durations: Histogram = attrs.field(init=False)
    queue_waits: QueueWaits = attrs.field(init=False)
    #: ``task_retrying`` events counted by the aggregate (not duplicates).
    task_retries: int = 0
    #: Tasks that failed with ``timed_out``: the events say no more (a timed-out
    #: attempt that is retried shows only as a ``task_retrying``).
    task_timeouts: int = 0
    session_updates: dict[Trigger, int] = attrs.field(init=False)
    events_published: dict[str, int] = attrs.field(init=False)
    _collector: RuncastCollector | None = None
    _process_collector: ProcessCollector | None = None
    _remove_listener: Callable[[], None] | None = None
    #: True while a broadcaster applies events to its aggregate (shared with us)
    #: and hands them on through :meth:`count_event` instead of our listener.
    following: bool = False
    _closed: bool = False

    def __attrs_post_init__(self) -> None:
        _check_bound("max_models", self.max_models)
        _check_bound("max_queue_waits", self.max_queue_waits)
        self.aggregate = SessionAggregate(session_id="metrics")
        self.tasks_ended = {state: 0 for state in sorted(END_STATES)}
        self.tasks_retried = {state: 0 for state in sorted(END_STATES)}
        self.task_durations = Histogram(DURATION_BUCKETS)
        self.queue_waits = QueueWaits(self.max_queue_waits, Histogram(QUEUE_WAIT_BUCKETS))
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
        self._process_collector = _process_collector(self.registry)
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
        if self._process_collector is not None:
            self.registry.unregister(self._process_collector)
            self._process_collector = None

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
            self._count_end(item, kind)
        elif trigger == "task_start":
            self.queue_waits.started(event.task_id, item.time)
        elif trigger == "task_retry":
            retried_from = self.aggregate.retried_from
            if retried_from is not None:
                self.tasks_retried[retried_from] += 1
            self.queue_waits.queued(event.task_id, item.time)
        elif kind is TaskQueued and self.aggregate.task_state(event.task_id) == "queued":
            # Not a late event about a task that started or ended already.
            self.queue_waits.queued(event.task_id, item.time)

    def _count_end(self, item: Published, kind: type) -> None:
        """An end, or a running task back to retrying, as counted by the aggregate."""
        event = item.event
        self.queue_waits.forget(event.task_id)
        end_state = _END_EVENTS.get(kind)
        if end_state is None:
            if kind is TaskRetrying:
                self.task_retries += 1
            return
        self.tasks_ended[end_state] += 1
        if end_state == "cancelled":
            return
        self.task_durations.observe(cast(TaskCompleted | TaskFailed, event).duration_seconds)
        if kind is TaskFailed and cast(TaskFailed, event).timed_out:
            self.task_timeouts += 1

    def _add_usage(self, event: TaskUsage) -> None:
        totals = self._model_totals(event.model, event.provider)
        totals.tokens[0] += event.input_tokens
        totals.tokens[1] += event.output_tokens
        totals.tokens[2] += event.cache_read_tokens
        totals.tokens[3] += event.cache_write_tokens
        if event.cost_usd is None:
            totals.unpriced_tokens += event.total_tokens
        else:
            totals.cost_usd += event.cost_usd

    def _model_totals(self, model: str, provider: str | None) -> ModelTotals:
        labels = (model or UNKNOWN_MODEL, provider or UNKNOWN_MODEL)
        totals = self.models.get(labels)
        if totals is not None:
            return totals
        if len(self.models) >= self.max_models + (_OTHER_LABELS in self.models):
            self.model_overflow_total += 1
            labels = _OTHER_LABELS
        return self.models.setdefault(labels, ModelTotals())

    def count_session_update(self, trigger: Trigger) -> None:
        """Called by the broadcaster for each ``session_update`` it sends."""
        self.session_updates[trigger] += 1

    def restore(self, previous: SessionUpdate) -> None:
        """Seed the session gauges (duration, pause, budget) from a stored snapshot.

        While following a broadcaster, its restore of the shared aggregate did it.
        """
        if not self.following:
            self.aggregate.restore(previous)


_OTHER_LABELS: Final = (OTHER_MODEL, OTHER_MODEL)


def _check_bound(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BroadcasterConfigError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise BroadcasterConfigError(f"{name} must be >= 1, got {value}")


def _process_collector(registry: CollectorRegistry) -> ProcessCollector | None:
    """prometheus_client's ``process_*``, on ``registry``; None if it has them already.

    The collector has no ``describe``, so a registry clashes on it only when it
    describes collectors by collecting them (``auto_describe``).
    """
    try:
        return ProcessCollector(registry=registry)
    except ValueError:
        return None
