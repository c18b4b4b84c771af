"""Metrics by Prometheus' conventions: start time, provider label, retries, timeouts, queue
wait, the process collector and ``# UNIT`` lines; each bounded, what overflows counted."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

import attrs
import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from broadcaster import BroadcasterConfigError, RuncastMetrics, SessionBroadcaster, render_metrics
from events import (
    BudgetChanged,
    Event,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskUsage,
)

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
Feeding = Literal["own listener", "fed by a broadcaster"]
FEEDINGS: tuple[Feeding, ...] = ("own listener", "fed by a broadcaster")


@attrs.define
class WallClock:
    """The publisher's clock: event times move only when the test says so."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@attrs.define
class Run:
    publisher: Publisher
    registry: CollectorRegistry
    metrics: RuncastMetrics
    clock: WallClock

    def publish(self, *events: Event) -> None:
        for event in events:
            self.publisher.publish(event)

    def scrape(self) -> dict[str, list[Sample]]:
        body, _ = render_metrics(self.registry, None)
        return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def start_run(
    feeding: Feeding = "own listener", *, max_models: int = 50, max_queue_waits: int = 100_000
) -> Run:
    """Metrics on a fresh publisher, applying events themselves or fed by a broadcaster."""
    clock = WallClock()
    publisher = Publisher(clock=clock)
    registry = CollectorRegistry()
    metrics = RuncastMetrics(
        registry, publisher, max_models=max_models, max_queue_waits=max_queue_waits
    )
    if feeding == "fed by a broadcaster":
        broadcaster = SessionBroadcaster(publisher, metrics=metrics)
        publisher.add_listener(broadcaster.on_event)
        broadcaster.feed_metrics()
        assert metrics.following
    return Run(publisher, registry, metrics, clock)


def value(samples: Iterable[Sample], name: str | None = None, **labels: str) -> float:
    [match] = [
        s.value
        for s in samples
        if s.labels == labels and not s.name.endswith("_created") and name in (None, s.name)
    ]
    return match


# -- start time -----------------------------------------------------------------
async def test_start_time_is_absent_until_a_task_starts_then_the_first_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = start_run()
    run.publish(TaskQueued(task_id="a"))
    assert "runcast_session_start_time_seconds" not in run.scrape()
    run.clock.advance(2.5)
    run.publish(TaskStarted(task_id="a"))
    run.clock.advance(60)
    run.publish(TaskQueued(task_id="b"), TaskStarted(task_id="b"))
    first_start = (T0 + timedelta(seconds=2.5)).timestamp()
    assert value(run.scrape()["runcast_session_start_time_seconds"]) == first_start
    # The duration gauge stays, for dashboards that read it.
    assert "runcast_session_duration_seconds" in run.scrape()


def test_start_time_of_a_resumed_session_is_the_stored_one() -> None:
    run = start_run()
    run.metrics.restore(SessionUpdate(session_id="stored", duration_seconds=30, started_at=T0))
    assert value(run.scrape()["runcast_session_start_time_seconds"]) == T0.timestamp()


# -- provider label ---------------------------------------------------------------
async def test_usage_is_labelled_by_model_and_provider_unknown_when_absent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = start_run()
    run.publish(
        TaskUsage(task_id="t", model="m", provider="anthropic", input_tokens=3, cost_usd=0.5),
        TaskUsage(task_id="t", model="m", provider="bedrock", input_tokens=4, cost_usd=0.25),
        TaskUsage(task_id="t", model="m", input_tokens=5),
        TaskUsage(task_id="t", model="", provider="", output_tokens=6),
    )
    scraped = run.scrape()
    tokens = scraped["runcast_tokens"]
    assert value(tokens, kind="input", model="m", provider="anthropic") == 3
    assert value(tokens, kind="input", model="m", provider="bedrock") == 4
    assert value(tokens, kind="input", model="m", provider="unknown") == 5
    assert value(tokens, kind="output", model="unknown", provider="unknown") == 6
    assert value(scraped["runcast_cost_usd"], model="m", provider="bedrock") == 0.25
    assert value(scraped["runcast_unpriced_tokens"], model="m", provider="unknown") == 5


async def test_model_and_provider_pairs_share_the_label_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = start_run(max_models=3)
    for index in range(10):  # one model through ten providers: still 3 pairs + other
        run.publish(
            TaskUsage(task_id="t", model="m", provider=f"p{index}", input_tokens=1, cost_usd=1.0)
        )
    run.publish(TaskUsage(task_id="t", model="m", provider="p1", input_tokens=100))
    scraped = run.scrape()
    tokens = scraped["runcast_tokens"]
    pairs = {(s.labels["model"], s.labels["provider"]) for s in tokens}
    assert pairs == {("m", "p0"), ("m", "p1"), ("m", "p2"), ("other", "other")}
    assert value(tokens, kind="input", model="other", provider="other") == 7
    assert value(tokens, kind="input", model="m", provider="p1") == 101
    assert value(scraped["runcast_model_label_overflow"]) == 7


# -- retries and timeouts -------------------------------------------------------------
@pytest.mark.parametrize("feeding", FEEDINGS)
async def test_retries_count_each_retried_attempt_once(
    feeding: Feeding, autojump_clock: trio.testing.MockClock
) -> None:
    run = start_run(feeding)
    run.publish(TaskQueued(task_id="a"), TaskStarted(task_id="a"))
    run.publish(TaskRetrying(task_id="a", attempt=1, error="exit 1"))
    run.publish(TaskRetrying(task_id="a", attempt=1, error="exit 1"))  # a duplicate
    run.publish(TaskQueued(task_id="a", attempt=2), TaskStarted(task_id="a", attempt=2))
    run.publish(TaskRetrying(task_id="a", attempt=1))  # about a superseded attempt
    run.publish(TaskRetrying(task_id="a", attempt=2, error="timed out after 5s"))
    run.publish(TaskQueued(task_id="a", attempt=3), TaskStarted(task_id="a", attempt=3))
    run.publish(TaskCompleted(task_id="a", attempt=3))
    scraped = run.scrape()
    assert value(scraped["runcast_task_retries"]) == 2
    assert value(scraped["runcast_task_timeouts"]) == 0


@pytest.mark.parametrize("feeding", FEEDINGS)
async def test_timeouts_count_tasks_that_failed_timed_out(
    feeding: Feeding, autojump_clock: trio.testing.MockClock
) -> None:
    run = start_run(feeding)
    for task_id in ("slow", "slower", "broken"):
        run.publish(TaskQueued(task_id=task_id), TaskStarted(task_id=task_id))
    run.publish(TaskFailed(task_id="slow", timed_out=True, error="timed out after 1s"))
    run.publish(TaskFailed(task_id="slow", timed_out=True))  # a duplicate end
    run.publish(TaskFailed(task_id="slower", timed_out=True, duration_seconds=2))
    run.publish(TaskFailed(task_id="broken", error="exit 1"))
    scraped = run.scrape()
    assert value(scraped["runcast_task_timeouts"]) == 2
    assert value(scraped["runcast_tasks"], status="failed") == 3
    assert value(scraped["runcast_task_retries"]) == 0


# -- queue wait -------------------------------------------------------------------------
@pytest.mark.parametrize("feeding", FEEDINGS)
async def test_queue_wait_is_observed_per_attempt_from_the_event_times(
    feeding: Feeding, autojump_clock: trio.testing.MockClock
) -> None:
    run = start_run(feeding)
    run.publish(TaskQueued(task_id="a"))
    run.clock.advance(3)
    run.publish(TaskQueued(task_id="a"))  # a duplicate: the wait began at the first
    run.publish(TaskStarted(task_id="a"))
    run.publish(TaskRetrying(task_id="a", attempt=1))
    run.clock.advance(100)  # the backoff is not queue time
    run.publish(TaskQueued(task_id="a", attempt=2))
    run.clock.advance(0.05)
    run.publish(TaskStarted(task_id="a", attempt=2))
    histogram = run.scrape()["runcast_task_queue_wait_seconds"]
    assert value(histogram, "runcast_task_queue_wait_seconds_count") == 2
    assert value(histogram, "runcast_task_queue_wait_seconds_sum") == pytest.approx(3.05)
    assert value(histogram, le="0.01") == 0
    assert value(histogram, le="0.1") == 1
    assert value(histogram, le="1.0") == 1
    assert value(histogram, le="5.0") == 2
    assert value(histogram, le="+Inf") == 2
    assert run.metrics.queue_waits.waiting == 0


async def test_a_clock_stepped_back_reads_as_no_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = start_run()
    run.publish(TaskQueued(task_id="a"))
    run.clock.advance(-30)
    run.publish(TaskStarted(task_id="a"))
    histogram = run.scrape()["runcast_task_queue_wait_seconds"]
    assert value(histogram, "runcast_task_queue_wait_seconds_sum") == 0
    assert value(histogram, le="0.01") == 1


@pytest.mark.parametrize("feeding", FEEDINGS)
async def test_queue_times_are_forgotten_when_a_waiting_task_ends(
    feeding: Feeding, autojump_clock: trio.testing.MockClock
) -> None:
    run = start_run(feeding)
    run.publish(TaskQueued(task_id="cancelled"), TaskQueued(task_id="failed"))
    assert run.metrics.queue_waits.waiting == 2
    run.publish(TaskCancelled(task_id="cancelled"))
    run.publish(TaskFailed(task_id="failed", error="never started"))
    assert run.metrics.queue_waits.waiting == 0
    run.publish(TaskQueued(task_id="cancelled"))  # late, about an ended task
    assert run.metrics.queue_waits.waiting == 0
    run.publish(TaskStarted(task_id="cancelled"))
    histogram = run.scrape()["runcast_task_queue_wait_seconds"]
    assert value(histogram, "runcast_task_queue_wait_seconds_count") == 0


@pytest.mark.parametrize("feeding", FEEDINGS)
async def test_queue_times_kept_are_bounded_and_the_rest_counted(
    feeding: Feeding, autojump_clock: trio.testing.MockClock
) -> None:
    run = start_run(feeding, max_queue_waits=2)
    for task_id in ("a", "b", "c", "d"):
        run.publish(TaskQueued(task_id=task_id))
    assert run.metrics.queue_waits.waiting == 2
    run.clock.advance(1)
    run.publish(TaskStarted(task_id="a"))
    run.publish(TaskQueued(task_id="e"))  # room again
    for task_id in ("b", "c", "d", "e"):
        run.publish(TaskStarted(task_id=task_id))
    scraped = run.scrape()
    histogram = scraped["runcast_task_queue_wait_seconds"]
    assert value(histogram, "runcast_task_queue_wait_seconds_count") == 3  # a, b, e
    assert value(scraped["runcast_task_queue_wait_untracked"]) == 2  # c, d
    assert run.metrics.queue_waits.waiting == 0


@pytest.mark.parametrize(("setting", "message"), [(0, ">= 1"), (True, "int"), (2.5, "int")])
def test_bad_max_queue_waits_is_refused(setting: object, message: str) -> None:
    with pytest.raises(BroadcasterConfigError, match=f"max_queue_waits.*{message}"):
        RuncastMetrics(CollectorRegistry(), Publisher(), max_queue_waits=setting)  # type: ignore[arg-type]


# -- process collector, units -----------------------------------------------------------
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_the_process_collector_is_on_our_registry_until_close() -> None:
    run = start_run()
    scraped = run.scrape()
    assert value(scraped["process_resident_memory_bytes"]) > 0
    assert value(scraped["process_cpu_seconds"]) > 0
    run.metrics.close()
    assert not [name for name in run.scrape() if name.startswith("process_")]


def test_a_registry_with_process_metrics_already_keeps_them_once() -> None:
    registry = CollectorRegistry(auto_describe=True)  # refuses a second process_*
    theirs = ProcessCollector(registry=registry)
    metrics = RuncastMetrics(registry, Publisher())
    body, _ = render_metrics(registry, None)
    assert body.count(b"# TYPE process_resident_memory_bytes gauge") == 1
    assert b"# TYPE runcast_tasks_running gauge" in body
    metrics.close()
    body, _ = render_metrics(registry, None)
    assert b"process_resident_memory_bytes" in body  # theirs stays
    registry.unregister(theirs)


async def test_openmetrics_declares_the_unit_of_each_family_that_has_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = start_run()
    run.publish(TaskQueued(task_id="a"), TaskStarted(task_id="a"))
    run.publish(TaskUsage(task_id="a", model="m", input_tokens=1, cost_usd=0.1))
    run.publish(TaskCompleted(task_id="a", duration_seconds=1))
    run.publish(BudgetChanged(budget_usd=5.0))
    body, _ = render_metrics(run.registry, OPENMETRICS)
    text = body.decode()
    units = {
        family.name: family.unit
        for family in parse_openmetrics(text)  # type: ignore[no-untyped-call]
        if family.name.startswith("runcast_") and family.unit
    }
    assert units == {
        "runcast_task_duration_seconds": "seconds",
        "runcast_task_queue_wait_seconds": "seconds",
        "runcast_session_start_time_seconds": "seconds",
        "runcast_session_duration_seconds": "seconds",
        "runcast_cost_usd": "usd",
        "runcast_budget_usd": "usd",
        "runcast_budget_remaining_usd": "usd",
    }
    assert "# UNIT runcast_cost_usd usd\n" in text
    assert "runcast_cost_usd_total{" in text
    # The text format has no units, and no name changed for them.
    plain = {
        f.name
        for f in text_string_to_metric_families(render_metrics(run.registry, None)[0].decode())
    }
    assert set(units) <= plain
