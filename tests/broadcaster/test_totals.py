"""Session totals and metrics stay exact for sane input, finite and capped for any other."""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from typing import Any

import pytest
import structlog.testing
import trio
import trio.testing
from _api_support import http_get, served
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from broadcaster import (
    MAX_TOTAL_COST_USD,
    MAX_TOTAL_TOKENS,
    RuncastMetrics,
    SessionAggregate,
    render_metrics,
)
from events import (
    MAX_RECORD_COST_USD,
    MAX_RECORD_TOKENS,
    BudgetChanged,
    Published,
    Publisher,
    SessionUpdate,
    TaskCompleted,
    TaskStarted,
    TaskUsage,
)

SIX_E18 = 6 * 10**18
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _aggregate(*events: TaskUsage | BudgetChanged) -> SessionAggregate:
    aggregate = SessionAggregate(session_id="s", clock=lambda: 0.0)
    publisher = Publisher()

    def apply(item: Published) -> None:
        aggregate.apply(item)

    publisher.add_listener(apply)
    for event in events:
        publisher.publish(event)
    return aggregate


def _usage(**fields: Any) -> TaskUsage:
    return TaskUsage(task_id="t", model="m", **fields)


def test_token_totals_past_sqlite_integers_stay_exact() -> None:
    aggregate = _aggregate(_usage(input_tokens=SIX_E18), _usage(input_tokens=SIX_E18))
    snapshot = aggregate.snapshot()
    assert snapshot.input_tokens == snapshot.total_tokens == 2 * SIX_E18
    assert snapshot.unpriced_tokens == 2 * SIX_E18
    assert not aggregate.saturated


def test_cost_totals_past_a_float_saturate_at_the_cap_and_say_so_once() -> None:
    aggregate = _aggregate(
        BudgetChanged(budget_usd=5.0),
        _usage(input_tokens=1, cost_usd=1e308, cost_source="reported"),
        _usage(input_tokens=1, cost_usd=1e308, cost_source="reported"),
        _usage(input_tokens=1, cost_usd=1000.0, cost_source="reported"),
    )
    with structlog.testing.capture_logs() as logs:
        snapshot = aggregate.snapshot()  # raised "must be finite" while the sum was inf
    assert snapshot.estimated_cost_usd == MAX_TOTAL_COST_USD
    assert snapshot.budget_remaining_usd == 0.0
    assert snapshot.input_tokens == 3  # the other totals are untouched
    assert aggregate.saturated
    with structlog.testing.capture_logs() as logs_later:
        aggregate.snapshot()
    assert logs_later == []  # said once
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "saturated" in warning["event"]
    assert warning["max_total_cost_usd"] == MAX_TOTAL_COST_USD


def test_token_totals_past_the_cap_saturate_at_it() -> None:
    aggregate = _aggregate(
        _usage(input_tokens=10**400, output_tokens=7),
        _usage(cache_read_tokens=MAX_TOTAL_TOKENS, cost_usd=1.0, cost_source="computed"),
        _usage(cache_read_tokens=1, cost_usd=1.0, cost_source="computed"),
    )
    snapshot = aggregate.snapshot()
    assert snapshot.input_tokens == MAX_TOTAL_TOKENS
    assert snapshot.cache_read_tokens == MAX_TOTAL_TOKENS
    assert snapshot.output_tokens == 7
    assert snapshot.unpriced_tokens == MAX_TOTAL_TOKENS
    assert snapshot.total_tokens == 2 * MAX_TOTAL_TOKENS + 7
    assert snapshot.estimated_cost_usd == 2.0
    assert aggregate.saturated


# Counts and costs up to the parsers' bounds, and far beyond them.
_COUNTS = st.one_of(st.integers(0, MAX_RECORD_TOKENS), st.integers(0, 10**30))
_COSTS = st.one_of(
    st.none(),
    st.floats(0, MAX_RECORD_COST_USD),
    st.floats(0, sys.float_info.max, allow_infinity=False),
)
_RECORDS = st.builds(
    _usage,
    input_tokens=_COUNTS,
    output_tokens=_COUNTS,
    cache_read_tokens=_COUNTS,
    cache_write_tokens=_COUNTS,
    cost_usd=_COSTS,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_RECORDS, max_size=20))
def test_totals_are_the_exact_sums_held_at_their_caps(records: list[TaskUsage]) -> None:
    snapshot = _aggregate(*records).snapshot()  # it validates: finite, >= 0, tokens add up
    for kind in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        exact = sum(getattr(record, kind) for record in records)
        assert getattr(snapshot, kind) == min(exact, MAX_TOTAL_TOKENS)
    unpriced = sum(record.total_tokens for record in records if record.cost_usd is None)
    assert snapshot.unpriced_tokens == min(unpriced, MAX_TOTAL_TOKENS)
    cost = sum(Fraction(record.cost_usd) for record in records if record.cost_usd is not None)
    expected = float(min(cost, Fraction(MAX_TOTAL_COST_USD)))
    assert snapshot.estimated_cost_usd == pytest.approx(expected, rel=1e-9)
    assert snapshot.estimated_cost_usd <= MAX_TOTAL_COST_USD


def test_a_restored_snapshot_beyond_the_caps_is_held_at_them() -> None:
    aggregate = SessionAggregate(session_id="s", clock=lambda: 0.0)
    aggregate.restore(
        SessionUpdate(
            session_id="s",
            input_tokens=10**30,
            total_tokens=10**30,
            unpriced_tokens=10**30,
            estimated_cost_usd=1e300,
        )
    )
    snapshot = aggregate.snapshot()
    assert snapshot.input_tokens == snapshot.unpriced_tokens == MAX_TOTAL_TOKENS
    assert snapshot.estimated_cost_usd == MAX_TOTAL_COST_USD


def _samples(body: bytes, *, openmetrics: bool) -> dict[str, list[float]]:
    parse = parse_om if openmetrics else text_string_to_metric_families
    return {
        family.name: [sample.value for sample in family.samples] for family in parse(body.decode())
    }


async def test_metrics_stay_finite_past_a_float(autojump_clock: trio.testing.MockClock) -> None:
    publisher = Publisher()
    registry = CollectorRegistry()
    RuncastMetrics(registry, publisher)
    assert _samples(render_metrics(registry, None)[0], openmetrics=False)[
        "runcast_usage_saturated"
    ] == [0.0]
    publisher.publish(_usage(input_tokens=10**400))
    for task_id in ("a", "b"):
        publisher.publish(TaskStarted(task_id=task_id))
        publisher.publish(
            TaskUsage(task_id=task_id, model="m", cost_usd=1e308, cost_source="reported")
        )
        publisher.publish(TaskCompleted(task_id=task_id, duration_seconds=1e308))
    for accept in (None, OPENMETRICS):
        body, _ = render_metrics(registry, accept)
        scraped = _samples(body, openmetrics=accept is not None)
        assert all(math.isfinite(v) for values in scraped.values() for v in values), body
    scraped = _samples(render_metrics(registry, None)[0], openmetrics=False)
    assert scraped["runcast_cost_usd"] == [MAX_TOTAL_COST_USD]
    assert max(scraped["runcast_tokens"]) == float(MAX_TOTAL_TOKENS)
    assert scraped["runcast_usage_saturated"] == [1.0]
    assert sys.float_info.max in scraped["runcast_task_duration_seconds"]  # its _sum


async def test_api_session_and_metrics_answer_past_a_float() -> None:
    with trio.fail_after(10):
        async with served() as stack:
            stack.publisher.publish(TaskStarted(task_id="t1"))
            for _ in range(2):
                stack.publisher.publish(
                    TaskUsage(task_id="t1", model="m", cost_usd=1e308, cost_source="reported")
                )
            stack.publisher.publish(TaskUsage(task_id="t1", model="m", input_tokens=SIX_E18))
            stack.publisher.publish(TaskUsage(task_id="t1", model="m", input_tokens=SIX_E18))
            session = await http_get(stack.port, "/api/session")
            metrics = await http_get(stack.port, "/metrics")
    assert session.status == 200
    assert session.json()["estimated_cost_usd"] == MAX_TOTAL_COST_USD
    assert session.json()["input_tokens"] == 2 * SIX_E18
    assert metrics.status == 200
    scraped = _samples(metrics.body, openmetrics=False)
    assert scraped["runcast_cost_usd"] == [MAX_TOTAL_COST_USD]
