"""The metric families built from :class:`RuncastMetrics`' values at scrape time.

A family whose value has a unit declares it (``unit=``), so OpenMetrics has its
``# UNIT`` line; every such name already ends with ``_<unit>``, so the names
are what they were in both formats.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Final, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from events import Publisher

from ._aggregate import SessionAggregate, Trigger
from ._tallies import OTHER_MODEL, Histogram, ModelTotals, QueueWaits
from ._totals import MAX_TOTAL_COST_USD, MAX_TOTAL_TOKENS, capped_cost, capped_tokens

TOKEN_KINDS: Final = ("input", "output", "cache_read", "cache_write")
_MAX_FLOAT: Final = sys.float_info.max


class MetricValues(Protocol):
    """What the collector reads (``RuncastMetrics`` holds it)."""

    @property
    def publisher(self) -> Publisher: ...
    @property
    def aggregate(self) -> SessionAggregate: ...
    @property
    def tasks_ended(self) -> Mapping[str, int]: ...
    @property
    def tasks_retried(self) -> Mapping[str, int]: ...
    @property
    def task_durations(self) -> Histogram: ...
    @property
    def queue_waits(self) -> QueueWaits: ...
    @property
    def task_retries(self) -> int: ...
    @property
    def task_timeouts(self) -> int: ...
    @property
    def models(self) -> Mapping[tuple[str, str], ModelTotals]: ...
    @property
    def model_overflow_total(self) -> int: ...
    @property
    def session_updates(self) -> Mapping[Trigger, int]: ...
    @property
    def events_published(self) -> Mapping[str, int]: ...


class RuncastCollector:
    """Builds the metric families from ``values`` at scrape time."""

    def __init__(self, metrics: MetricValues) -> None:
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
        retried = CounterMetricFamily(
            "runcast_tasks_retried",
            "Ended tasks an operator retried, by the status they left; runcast_tasks "
            "minus this is the tasks whose latest status it is.",
            labels=("status",),
        )
        for status, count in m.tasks_retried.items():
            if with_samples:
                retried.add_metric((status,), count)
        yield retried
        yield _histogram(
            "runcast_task_duration_seconds",
            "Run time of tasks that completed or failed.",
            m.task_durations if with_samples else None,
        )
        yield from self._attempt_families(with_samples)
        yield from self._model_families(with_samples)
        yield from _session_times(agg, with_samples)
        yield _gauge(
            "runcast_executor_paused",
            "1 while the executor is paused.",
            agg.is_paused,
            with_samples,
        )
        if agg.budget_usd is not None or not with_samples:
            yield _gauge(
                "runcast_budget_usd",
                "The session's budget in USD.",
                agg.budget_usd,
                with_samples,
                unit="usd",
            )
            yield _gauge(
                "runcast_budget_remaining_usd",
                "USD left of the budget (never below 0).",
                agg.budget_remaining_usd,
                with_samples,
                unit="usd",
            )
        yield from self._event_families(with_samples)

    def _attempt_families(self, with_samples: bool) -> Iterator[Metric]:
        m = self._metrics
        waits = m.queue_waits
        retries = CounterMetricFamily(
            "runcast_task_retries",
            "Attempts that failed and are retried (task_retrying events).",
        )
        timeouts = CounterMetricFamily(
            "runcast_task_timeouts",
            "Tasks that failed because their last attempt timed out (task_failed with "
            "timed_out); a timed-out attempt that is retried counts in runcast_task_retries.",
        )
        untracked = CounterMetricFamily(
            "runcast_task_queue_wait_untracked",
            "Attempts whose queue wait was not measured: the queue times of "
            f"{waits.max_waiting} waiting tasks were kept already.",
        )
        if with_samples:
            retries.add_metric((), m.task_retries)
            timeouts.add_metric((), m.task_timeouts)
            untracked.add_metric((), waits.untracked)
        yield retries
        yield timeouts
        yield _histogram(
            "runcast_task_queue_wait_seconds",
            "Time from task_queued to task_started, per attempt (a retry is queued again).",
            waits.histogram if with_samples else None,
        )
        yield untracked

    def _model_families(self, with_samples: bool) -> Iterator[Metric]:
        m = self._metrics
        tokens = CounterMetricFamily(
            "runcast_tokens",
            "Tokens recorded by tasks, by kind, model and provider; input excludes cache tokens.",
            labels=("kind", "model", "provider"),
        )
        cost = CounterMetricFamily(
            "runcast_cost_usd",
            "Estimated cost in USD, by model and provider.",
            labels=("model", "provider"),
            unit="usd",
        )
        unpriced = CounterMetricFamily(
            "runcast_unpriced_tokens",
            "Tokens of models with no known price, by model and provider.",
            labels=("model", "provider"),
        )
        overflow = CounterMetricFamily(
            "runcast_model_label_overflow",
            f"Usage records counted as model and provider '{OTHER_MODEL}' because the "
            "model and provider labels are full.",
        )
        saturated = GaugeMetricFamily(
            "runcast_usage_saturated",
            f"1 while a session usage total is past its cap ({MAX_TOTAL_TOKENS:.0e} tokens "
            f"of a kind, {MAX_TOTAL_COST_USD:.0e} USD) and reads as the cap.",
        )
        if with_samples:
            for (model, provider), totals in m.models.items():
                for kind, count in zip(TOKEN_KINDS, totals.tokens, strict=True):
                    tokens.add_metric((kind, model, provider), capped_tokens(count))
                cost.add_metric((model, provider), capped_cost(totals.cost_usd))
                unpriced.add_metric((model, provider), capped_tokens(totals.unpriced_tokens))
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


def _session_times(aggregate: SessionAggregate, with_samples: bool) -> Iterator[Metric]:
    """The start time (the conventional gauge) and the duration (kept for existing users)."""
    started_at = aggregate.started_at
    if started_at is not None or not with_samples:
        yield _gauge(
            "runcast_session_start_time_seconds",
            "Unix time the session's first task started (absent before any started).",
            None if started_at is None else started_at.timestamp(),
            with_samples,
            unit="seconds",
        )
    yield _gauge(
        "runcast_session_duration_seconds",
        "Whole seconds since the session's first task started "
        "(grows while idle: prefer time() - runcast_session_start_time_seconds).",
        _session_duration(aggregate) if with_samples else 0,
        with_samples,
        unit="seconds",
    )


def _session_duration(aggregate: SessionAggregate) -> int:
    try:
        return aggregate.duration_seconds()
    except RuntimeError:
        # Scraped outside trio (e.g. from a prometheus_client HTTP thread): no
        # trio clock to read, so report the duration as last computed.
        return aggregate.last_duration_seconds


def _gauge(
    name: str, documentation: str, value: float | None, with_samples: bool, *, unit: str = ""
) -> Metric:
    if not with_samples or value is None:
        return GaugeMetricFamily(name, documentation, unit=unit)
    return GaugeMetricFamily(name, documentation, value=float(value), unit=unit)


def _histogram(name: str, documentation: str, histogram: Histogram | None) -> Metric:
    """Seconds observed; ``histogram`` None describes the family without samples."""
    if histogram is None:
        return HistogramMetricFamily(name, documentation, unit="seconds")
    return HistogramMetricFamily(
        name,
        documentation,
        buckets=histogram.buckets(),
        # Each value is finite, but two of them may sum to inf.
        sum_value=min(histogram.sum, _MAX_FLOAT),
        unit="seconds",
    )


def render_metrics(registry: CollectorRegistry, accept_header: str | None) -> tuple[bytes, str]:
    """The exposition of ``registry`` and its content type, OpenMetrics when asked for."""
    try:
        encoder, content_type = choose_encoder(accept_header or "")
    except (TypeError, ValueError):
        # prometheus_client compares a non-numeric ``version=`` (``version=abc``) with
        # numbers and raises; Accept is only a preference, so serve the default format.
        encoder, content_type = choose_encoder("")
    return encoder(registry), content_type
