"""The serve node's cluster metrics: reclaimed attempts counted from events, the rest read
when scraped."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest

from api.cluster._cluster_metrics import (
    ClusterCollector,
    ReclaimCounter,
    register_cluster_metrics,
)
from events import RelayPublisher, TaskFailed, TaskRetrying

WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def test_reclaimed_attempts_are_the_interrupted_retries_and_failures_only() -> None:
    publisher = RelayPublisher()
    reclaims = ReclaimCounter()
    publisher.add_listener(reclaims)
    lost = "interrupted: worker w:a:1234abcd stopped renewing its lease"
    publisher.publish_at(1, WHEN, TaskRetrying(task_id="a", attempt=1, error=lost))
    publisher.publish_at(2, WHEN, TaskFailed(task_id="b", attempt=3, error=lost))
    publisher.publish_at(3, WHEN, TaskRetrying(task_id="c", attempt=1, error="exit 1"))
    publisher.publish_at(4, WHEN, TaskFailed(task_id="d", error="interrupted by SIGTERM"))
    assert reclaims.count == 2


def test_the_families_are_read_when_scraped_and_unregistered_after() -> None:
    registry = CollectorRegistry()
    live = {"workers": 3, "lag": 17}
    errors: Counter[str] = Counter({"read_events": 2, "control": 1})
    reclaims = ReclaimCounter(count=5)
    collector = ClusterCollector(
        workers=lambda: live["workers"], lag=lambda: live["lag"], reclaimed=reclaims, errors=errors
    )
    unregister = register_cluster_metrics(registry, collector)
    live["workers"] = 4
    text = generate_latest(registry).decode()
    assert "runcast_workers 4.0" in text
    assert "runcast_stream_lag_events 17.0" in text
    assert "runcast_tasks_reclaimed_total 5.0" in text
    assert 'runcast_redis_errors_total{op="control"} 1.0' in text
    assert 'runcast_redis_errors_total{op="read_events"} 2.0' in text
    unregister()
    assert "runcast_workers" not in generate_latest(registry).decode()
