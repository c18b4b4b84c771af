"""RuncastMetrics: values after a scripted run equal the aggregate; exposition round-trips."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from broadcaster import (
    BroadcasterConfigError,
    RuncastMetrics,
    SessionBroadcaster,
    render_metrics,
    serve_broadcaster,
)
from events import (
    BudgetChanged,
    ExecutorPaused,
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

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


def scrape(registry: CollectorRegistry) -> dict[str, list[Sample]]:
    body, _ = render_metrics(registry, None)
    families = text_string_to_metric_families(body.decode())
    return {family.name: family.samples for family in families}


def value(samples: Iterable[Sample], **labels: str) -> float:
    [match] = [s.value for s in samples if s.labels == labels and not s.name.endswith("_created")]
    return match


def total(samples: Iterable[Sample], **labels: str) -> float:
    return sum(s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items()))


async def scripted_run(
    nursery: trio.Nursery,
) -> tuple[Publisher, CollectorRegistry, SessionBroadcaster]:
    """A small session: retries, failures, a cancel race, several models, a budget, a pause."""
    publisher = Publisher()
    registry = CollectorRegistry()
    metrics = RuncastMetrics(registry, publisher)
    broadcaster = await nursery.start(
        functools.partial(serve_broadcaster, publisher, metrics=metrics, interval=5)
    )
    broadcaster.subscribe_session()
    slow = publisher.subscribe("*", buffer_size=1)  # never read: drops are counted
    publisher.publish(BudgetChanged(budget_usd=10.0, by="startup"))
    for index in range(6):
        publisher.publish(TaskQueued(task_id=f"t{index}"))
    for index in range(4):
        publisher.publish(TaskStarted(task_id=f"t{index}"))
    await trio.sleep(3)
    publisher.publish(
        TaskUsage(
            task_id="t0",
            model="claude-sonnet-4-5",
            input_tokens=1000,
            output_tokens=200,
            cache_read_tokens=5000,
            cache_write_tokens=300,
            cost_usd=0.04,
            cost_source="computed",
        )
    )
    publisher.publish(TaskUsage(task_id="t1", model="gpt-4o", input_tokens=50, cost_usd=0.01))
    publisher.publish(TaskUsage(task_id="t2", model="homegrown", output_tokens=70))
    publisher.publish(TaskUsage(task_id="t2", model="", output_tokens=5))
    await trio.sleep(4)
    publisher.publish(TaskCompleted(task_id="t0", duration_seconds=7.0))
    publisher.publish(TaskCancelled(task_id="t0"))  # racing the completion: ignored
    publisher.publish(TaskFailed(task_id="t1", duration_seconds=0.5, error="exit 2"))
    publisher.publish(TaskRetrying(task_id="t2", attempt=1, delay_seconds=1))
    publisher.publish(TaskCancelled(task_id="t5"))  # cancelled while queued
    publisher.publish(ExecutorPaused(by="operator"))
    await trio.sleep(12)
    assert slow.dropped > 0
    return publisher, registry, broadcaster


async def test_metric_values_after_a_scripted_run_equal_the_aggregate(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    publisher, registry, broadcaster = await scripted_run(nursery)
    snapshot = broadcaster.snapshot()
    metrics = scrape(registry)

    assert value(metrics["runcast_tasks_running"]) == snapshot.tasks_running == 1
    assert value(metrics["runcast_tasks_queued"]) == snapshot.tasks_queued == 2
    tasks = metrics["runcast_tasks"]
    assert value(tasks, status="completed") == snapshot.tasks_completed == 1
    assert value(tasks, status="failed") == snapshot.tasks_failed == 1
    assert value(tasks, status="cancelled") == snapshot.tasks_cancelled == 1

    tokens = metrics["runcast_tokens"]
    assert total(tokens, kind="input") == snapshot.input_tokens == 1050
    assert total(tokens, kind="output") == snapshot.output_tokens == 275
    assert total(tokens, kind="cache_read") == snapshot.cache_read_tokens
    assert total(tokens, kind="cache_write") == snapshot.cache_write_tokens
    assert total(tokens) == snapshot.total_tokens
    assert value(tokens, kind="output", model="unknown", provider="unknown") == 5
    assert total(metrics["runcast_cost_usd"]) == pytest.approx(snapshot.estimated_cost_usd)
    assert value(metrics["runcast_cost_usd"], model="gpt-4o", provider="unknown") == (
        pytest.approx(0.01)
    )
    assert total(metrics["runcast_unpriced_tokens"]) == snapshot.unpriced_tokens == 75

    assert value(metrics["runcast_session_duration_seconds"]) == snapshot.duration_seconds == 19
    assert value(metrics["runcast_executor_paused"]) == 1 == int(snapshot.is_paused)
    assert value(metrics["runcast_budget_usd"]) == snapshot.budget_usd == 10.0
    assert value(metrics["runcast_budget_remaining_usd"]) == pytest.approx(
        snapshot.budget_remaining_usd
    )

    histogram = metrics["runcast_task_duration_seconds"]
    assert value(histogram, le="1.0") == 1
    assert value(histogram, le="10.0") == 2
    assert [s.value for s in histogram if s.name.endswith("_count")] == [2]
    assert [s.value for s in histogram if s.name.endswith("_sum")] == [7.5]

    updates = metrics["runcast_session_updates"]
    for trigger, count in broadcaster.updates_sent.items():
        assert value(updates, trigger=trigger) == count
    assert value(updates, trigger="subscribe") == 1
    assert value(updates, trigger="tick") == 3  # at 5, 10 and 15 s while tasks ran
    published = metrics["runcast_events_published"]
    assert value(published, event="task_usage") == 4
    assert value(published, event="session_update") == total(updates) - 1  # subscribe: direct
    assert total(published) == publisher.published_total
    assert value(metrics["runcast_events_dropped"]) == publisher.dropped_total > 0
    assert value(metrics["runcast_websocket_connections"]) == 0


async def test_every_metric_has_help_the_prefix_and_no_id_labels(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    _, registry, _ = await scripted_run(nursery)
    body, content_type = render_metrics(registry, None)
    assert content_type.startswith("text/plain")
    families = [
        family
        for family in text_string_to_metric_families(body.decode())
        if not family.name.startswith("process_")  # the process collector's own
    ]
    assert {family.name for family in families} == {
        "runcast_tasks_running",
        "runcast_tasks_queued",
        "runcast_tasks",
        "runcast_tasks_retried",
        "runcast_task_duration_seconds",
        "runcast_tokens",
        "runcast_cost_usd",
        "runcast_unpriced_tokens",
        "runcast_model_label_overflow",
        "runcast_usage_saturated",
        "runcast_session_duration_seconds",
        "runcast_session_start_time_seconds",
        "runcast_task_retries",
        "runcast_task_timeouts",
        "runcast_task_queue_wait_seconds",
        "runcast_task_queue_wait_untracked",
        "runcast_executor_paused",
        "runcast_budget_usd",
        "runcast_budget_remaining_usd",
        "runcast_session_updates",
        "runcast_events_published",
        "runcast_events_dropped",
        "runcast_websocket_connections",
    }
    for family in families:
        assert family.name.startswith("runcast_")
        assert family.documentation, f"{family.name} has no HELP"
        for sample in family.samples:
            assert not {"task_id", "session_id", "task", "session"} & set(sample.labels)
            assert not {"t0", "t1", "t2", "t5"} & set(sample.labels.values())


async def test_openmetrics_is_served_when_asked_for_and_parses_back(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    _, registry, broadcaster = await scripted_run(nursery)
    body, content_type = render_metrics(registry, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    parsed = parse_openmetrics(text)  # type: ignore[no-untyped-call]
    families = {family.name: family for family in parsed}
    assert families["runcast_tasks_running"].samples[0].value == 1
    assert families["runcast_tokens"].type == "counter"
    assert families["runcast_task_duration_seconds"].type == "histogram"
    plain_body, plain_type = render_metrics(registry, "text/html, */*")
    assert plain_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# EOF" not in plain_body
    assert broadcaster.snapshot().tasks_running == 1


def test_an_accept_header_prometheus_client_cannot_parse_gets_the_text_format() -> None:
    registry = CollectorRegistry()
    RuncastMetrics(registry, Publisher())
    for accept in ("application/openmetrics-text; version=abc", "text/plain; version=1.x"):
        body, content_type = render_metrics(registry, accept)
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        assert b"runcast_tasks_running" in body


async def test_model_label_keeps_the_first_50_models_then_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    registry = CollectorRegistry()
    RuncastMetrics(registry, publisher)
    for index in range(60):
        publisher.publish(
            TaskUsage(task_id="t", model=f"model-{index}", input_tokens=index, cost_usd=0.5)
        )
    publisher.publish(TaskUsage(task_id="t", model="model-3", input_tokens=1))
    tokens = scrape(registry)["runcast_tokens"]
    models = {s.labels["model"] for s in tokens}
    assert models == {f"model-{i}" for i in range(50)} | {"other"}
    assert value(tokens, kind="input", model="other", provider="other") == sum(range(50, 60))
    assert value(tokens, kind="input", model="model-3", provider="unknown") == 4
    assert value(scrape(registry)["runcast_cost_usd"], model="other", provider="other") == 5.0
    assert value(scrape(registry)["runcast_model_label_overflow"]) == 10


async def test_budget_gauges_exist_only_while_a_budget_is_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    registry = CollectorRegistry()
    RuncastMetrics(registry, publisher)
    assert "runcast_budget_usd" not in scrape(registry)
    publisher.publish(BudgetChanged(budget_usd=2.0))
    publisher.publish(TaskUsage(task_id="t", model="m", output_tokens=9, cost_usd=3.0))
    metrics = scrape(registry)
    assert value(metrics["runcast_budget_usd"]) == 2.0
    assert value(metrics["runcast_budget_remaining_usd"]) == 0.0
    publisher.publish(BudgetChanged(budget_usd=None))
    metrics = scrape(registry)
    assert "runcast_budget_usd" not in metrics
    assert "runcast_budget_remaining_usd" not in metrics


async def test_websocket_gauge_is_moved_by_its_owner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = CollectorRegistry()
    metrics = RuncastMetrics(registry, Publisher())
    metrics.websocket_connections.inc()
    metrics.websocket_connections.inc()
    metrics.websocket_connections.dec()
    assert value(scrape(registry)["runcast_websocket_connections"]) == 1


async def test_restore_seeds_the_session_gauges(autojump_clock: trio.testing.MockClock) -> None:
    registry = CollectorRegistry()
    publisher = Publisher()
    metrics = RuncastMetrics(registry, publisher)
    broadcaster = SessionBroadcaster(publisher, metrics=metrics)
    broadcaster.restore(
        SessionUpdate(
            duration_seconds=300,
            estimated_cost_usd=4.0,
            is_paused=True,
            session_id="stored",
            budget_usd=5.0,
            budget_remaining_usd=1.0,
        )
    )
    assert broadcaster.session_id == "stored"
    scraped = scrape(registry)
    assert value(scraped["runcast_session_duration_seconds"]) == 300
    assert value(scraped["runcast_executor_paused"]) == 1
    assert value(scraped["runcast_budget_remaining_usd"]) == 1.0


def test_close_unregisters_and_stops_listening() -> None:
    registry = CollectorRegistry()
    publisher = Publisher()
    metrics = RuncastMetrics(registry, publisher)
    with pytest.raises(BroadcasterConfigError, match="already holds"):
        RuncastMetrics(registry, publisher)
    metrics.close()
    metrics.close()
    assert render_metrics(registry, None)[0] == b""
    publisher.publish(TaskQueued(task_id="a"))
    assert metrics.events_published["task_queued"] == 0
    RuncastMetrics(registry, publisher)  # the names are free again


@pytest.mark.parametrize(("max_models", "message"), [(0, ">= 1"), (True, "int"), (2.5, "int")])
def test_bad_max_models_is_refused(max_models: object, message: str) -> None:
    with pytest.raises(BroadcasterConfigError, match=f"max_models.*{message}"):
        RuncastMetrics(CollectorRegistry(), Publisher(), max_models=max_models)  # type: ignore[arg-type]


def test_a_scrape_outside_trio_reports_the_last_known_duration() -> None:
    registry = CollectorRegistry()
    publisher = Publisher()
    metrics = RuncastMetrics(registry, publisher)

    async def run() -> None:
        publisher.publish(TaskStarted(task_id="a"))
        await trio.sleep(42.5)
        metrics.aggregate.duration_seconds()

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    scraped = scrape(registry)  # no trio run here
    assert value(scraped["runcast_session_duration_seconds"]) == 42
    assert value(scraped["runcast_tasks_running"]) == 1
