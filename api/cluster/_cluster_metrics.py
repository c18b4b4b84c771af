"""The cluster's metrics on a serve node's registry, read when scraped.

``runcast_workers`` (live workers: heartbeat not expired), ``runcast_stream_lag_events``
(how far this node is behind the session's seq counter), ``runcast_tasks_reclaimed_total``
(attempts ended because their worker stopped renewing its lease: a ``task_retrying``
or, with no retry left, a ``task_failed`` whose error starts ``interrupted: worker``)
and ``runcast_redis_errors_total{op}`` (failed Redis calls by operation; a bounded
label: the link's operations). Like the other ``runcast_*`` metrics, nothing is
done per event beyond one type check and a prefix test on the rare retry or failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Final

import attrs
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from events import Published, TaskFailed, TaskRetrying

#: What the worker that takes over an abandoned attempt says it ended with.
RECLAIMED_PREFIX: Final = "interrupted: worker"


@attrs.define(eq=False)
class ReclaimCounter:
    """A publisher listener counting reclaimed attempts."""

    count: int = 0

    def __call__(self, item: Published) -> None:
        event = item.event
        if (type(event) is TaskRetrying or type(event) is TaskFailed) and event.error.startswith(
            RECLAIMED_PREFIX
        ):
            self.count += 1


@attrs.define(eq=False)
class ClusterCollector:
    """The four families above, from callables read at scrape time."""

    workers: Callable[[], int]
    lag: Callable[[], int]
    reclaimed: ReclaimCounter
    errors: Counter[str]

    def describe(self) -> Iterable[Metric]:
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> list[Metric]:
        workers = GaugeMetricFamily(
            "runcast_workers", "Workers of the session whose heartbeat has not expired."
        )
        lag = GaugeMetricFamily(
            "runcast_stream_lag_events",
            "Events of the session this serve node has not read yet (seq counter - last seq).",
        )
        reclaimed = CounterMetricFamily(
            "runcast_tasks_reclaimed",
            "Attempts ended as interrupted because their worker stopped renewing its lease.",
        )
        errors = CounterMetricFamily(
            "runcast_redis_errors",
            "Failed Redis calls of this process, by operation.",
            labels=["op"],
        )
        if with_samples:
            workers.add_metric([], self.workers())
            lag.add_metric([], self.lag())
            reclaimed.add_metric([], self.reclaimed.count)
            for op, count in sorted(self.errors.items()):
                errors.add_metric([op], count)
        return [workers, lag, reclaimed, errors]


def register_cluster_metrics(
    registry: CollectorRegistry, collector: ClusterCollector
) -> Callable[[], None]:
    """Serve ``collector`` from ``registry``; returns the function that unregisters it."""
    registry.register(collector)
    return lambda: registry.unregister(collector)
