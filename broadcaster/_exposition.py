"""The metric families built from :class:`RuncastMetrics`' values at scrape time."""

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
from ._tallies import OTHER_MODEL, Histogram, ModelTotals
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
    def task_durations(self) -> Histogram: ...
    @property
    def models(self) -> Mapping[str, ModelTotals]: ...
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
