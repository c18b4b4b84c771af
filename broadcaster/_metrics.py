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

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Final, cast

import attrs
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

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
from ._totals import MAX_TOTAL_COST_USD, MAX_TOTAL_TOKENS, capped_cost, capped_tokens

DEFAULT_MAX_MODELS: Final = 50
OTHER_MODEL: Final = "other"
UNKNOWN_MODEL: Final = "unknown"
TOKEN_KINDS: Final = ("input", "output", "cache_read", "cache_write")
#: Agent runs take from seconds to hours.
DURATION_BUCKETS: Final = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_MAX_FLOAT: Final = sys.float_info.max


@attrs.define(eq=False)
class _ModelTotals:
    tokens: list[int] = attrs.field(factory=lambda: [0, 0, 0, 0])
    cost_usd: float = 0.0
    unpriced_tokens: int = 0


@attrs.define(eq=False)
class _Histogram:
    """Cumulative-at-scrape histogram of task durations."""

    bounds: tuple[float, ...]
    counts: list[int] = attrs.field(init=False)
    total: int = 0
    sum: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
                return

    def buckets(self) -> list[tuple[str, float]]:
        result: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            result.append((_float_label(bound), running))
        result.append(("+Inf", self.total))
        return result


_END_EVENTS: Final[dict[type, str]] = {
    TaskCompleted: "completed",
    TaskFailed: "failed",
    TaskCancelled: "cancelled",
}


def _float_label(value: float) -> str:
    return repr(float(value))


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
    models: dict[str, _ModelTotals] = attrs.field(init=False, factory=dict)
    model_overflow_total: int = 0
    task_durations: _Histogram = attrs.field(init=False)
    session_updates: dict[Trigger, int] = attrs.field(init=False)
    events_published: dict[str, int] = attrs.field(init=False)
    _collector: _RuncastCollector | None = None
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
        self.task_durations = _Histogram(DURATION_BUCKETS)
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
        collector = _RuncastCollector(self)
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

    def _model_totals(self, model: str) -> _ModelTotals:
        label = model or UNKNOWN_MODEL
        totals = self.models.get(label)
        if totals is not None:
            return totals
        if len(self.models) >= self.max_models + (OTHER_MODEL in self.models):
            self.model_overflow_total += 1
            label = OTHER_MODEL
        return self.models.setdefault(label, _ModelTotals())

    def count_session_update(self, trigger: Trigger) -> None:
        """Called by the broadcaster for each ``session_update`` it sends."""
        self.session_updates[trigger] += 1

    def restore(self, previous: SessionUpdate) -> None:
        """Seed the session gauges (duration, pause, budget) from a stored snapshot.

        While following a broadcaster, its restore of the shared aggregate did it.
        """
        if not self.following:
            self.aggregate.restore(previous)


class _RuncastCollector:
    """Builds the metric families from ``RuncastMetrics`` at scrape time."""

    def __init__(self, metrics: RuncastMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families(with_samples=False))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(with_samples=True))

    def _families(self, *, with_samples: bool) -> Iterator[Metric]:
        m = self._metrics
        agg = m.aggregate
        yield _gauge("runcast_tasks_running", "Tasks running now.", agg.tasks_running, with_samples)
        yield _gauge(
            "runcast_tasks_queued",
            "Tasks waiting to run, including those waiting to retry.",
            agg.tasks_queued,
            with_samples,
        )
        tasks_total = CounterMetricFamily(
            "runcast_tasks", "Tasks that ended, by final status.", labels=("status",)
        )
        for status, count in m.tasks_ended.items():
            if with_samples:
                tasks_total.add_metric((status,), count)
        yield tasks_total
        yield self._duration_histogram(with_samples)
        yield from self._model_families(with_samples)
        yield _gauge(
            "runcast_session_duration_seconds",
            "Whole seconds since the session's first task started.",
            _session_duration(agg) if with_samples else 0,
            with_samples,
        )
        yield _gauge(
            "runcast_executor_paused",
            "1 while the executor is paused.",
            agg.is_paused,
            with_samples,
        )
        if agg.budget_usd is not None or not with_samples:
            yield _gauge(
                "runcast_budget_usd", "The session's budget in USD.", agg.budget_usd, with_samples
            )
            yield _gauge(
                "runcast_budget_remaining_usd",
                "USD left of the budget (never below 0).",
                agg.budget_remaining_usd,
                with_samples,
            )
        yield from self._event_families(with_samples)

    def _duration_histogram(self, with_samples: bool) -> Metric:
        histogram = self._metrics.task_durations
        if not with_samples:
            return HistogramMetricFamily(
                "runcast_task_duration_seconds",
                "Run time of tasks that completed or failed.",
            )
        return HistogramMetricFamily(
            "runcast_task_duration_seconds",
            "Run time of tasks that completed or failed.",
            buckets=histogram.buckets(),
            # Durations are finite, but two of them may sum to inf.
            sum_value=min(histogram.sum, _MAX_FLOAT),
        )

    def _model_families(self, with_samples: bool) -> Iterator[Metric]:
        m = self._metrics
        tokens = CounterMetricFamily(
            "runcast_tokens",
            "Tokens recorded by tasks, by kind and model; input excludes cache tokens.",
            labels=("kind", "model"),
        )
        cost = CounterMetricFamily(
            "runcast_cost_usd", "Estimated cost in USD, by model.", labels=("model",)
        )
        unpriced = CounterMetricFamily(
            "runcast_unpriced_tokens",
            "Tokens of models with no known price, by model.",
            labels=("model",),
        )
        overflow = CounterMetricFamily(
            "runcast_model_label_overflow",
            f"Usage records counted as model '{OTHER_MODEL}' because the model label is full.",
        )
        saturated = GaugeMetricFamily(
            "runcast_usage_saturated",
            f"1 while a session usage total is past its cap ({MAX_TOTAL_TOKENS:.0e} tokens "
            f"of a kind, {MAX_TOTAL_COST_USD:.0e} USD) and reads as the cap.",
        )
        if with_samples:
            for model, totals in m.models.items():
                for kind, count in zip(TOKEN_KINDS, totals.tokens, strict=True):
                    tokens.add_metric((kind, model), capped_tokens(count))
                cost.add_metric((model,), capped_cost(totals.cost_usd))
                unpriced.add_metric((model,), capped_tokens(totals.unpriced_tokens))
            overflow.add_metric((), m.model_overflow_total)
            saturated.add_metric((), float(m.aggregate.saturated))
        yield from (tokens, cost, unpriced, overflow, saturated)

    def _event_families(self, with_samples: bool) -> Iterator[Metric]:
        m = self._metrics
        updates = CounterMetricFamily(
            "runcast_session_updates",
            "session_update events sent, by the trigger that caused each.",
            labels=("trigger",),
        )
        published = CounterMetricFamily(
            "runcast_events_published", "Events published, by event name.", labels=("event",)
        )
        dropped = CounterMetricFamily(
            "runcast_events_dropped",
            "Events dropped because a subscriber's buffer was full (each announced as a gap).",
        )
        if with_samples:
            for trigger, count in m.session_updates.items():
                updates.add_metric((trigger,), count)
            for name, count in m.events_published.items():
                published.add_metric((name,), count)
            dropped.add_metric((), m.publisher.dropped_total)
        yield from (updates, published, dropped)


def _session_duration(aggregate: SessionAggregate) -> int:
    try:
        return aggregate.duration_seconds()
    except RuntimeError:
        # Scraped outside trio (e.g. from a prometheus_client HTTP thread): no
        # trio clock to read, so report the duration as last computed.
        return aggregate.last_duration_seconds


def _gauge(name: str, documentation: str, value: float | None, with_samples: bool) -> Metric:
    if not with_samples or value is None:
        return GaugeMetricFamily(name, documentation)
    return GaugeMetricFamily(name, documentation, value=float(value))


def render_metrics(registry: CollectorRegistry, accept_header: str | None) -> tuple[bytes, str]:
    """The exposition of ``registry`` and its content type, OpenMetrics when asked for."""
    try:
        encoder, content_type = choose_encoder(accept_header or "")
    except (TypeError, ValueError):
        # prometheus_client compares a non-numeric ``version=`` (``version=abc``) with
        # numbers and raises; Accept is only a preference, so serve the default format.
        encoder, content_type = choose_encoder("")
    return encoder(registry), content_type
