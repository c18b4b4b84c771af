"""SessionAggregate: task counts under any event order, usage totals, restore."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster import RestoreError, SessionAggregate, Trigger
from events import (
    TASK_STATES,
    BudgetChanged,
    Event,
    ExecutorPaused,
    ExecutorResumed,
    Published,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskState,
    TaskUsage,
)

END: tuple[TaskState, ...] = ("completed", "failed", "cancelled")


@attrs.define
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def fed(aggregate: SessionAggregate) -> Publisher:
    publisher = Publisher(clock=lambda: datetime(2026, 11, 22, 10, 0, tzinfo=UTC))

    def listener(item: Published) -> None:
        aggregate.apply(item)

    publisher.add_listener(listener)
    return publisher


def task_event(kind: str, task_id: str, attempt: int) -> Event:
    if kind == "queued":
        return TaskQueued(task_id=task_id, attempt=attempt)
    if kind == "started":
        return TaskStarted(task_id=task_id, attempt=attempt)
    if kind == "retrying":
        return TaskRetrying(task_id=task_id, attempt=attempt)
    if kind == "completed":
        return TaskCompleted(task_id=task_id, attempt=attempt)
    if kind == "failed":
        return TaskFailed(task_id=task_id, attempt=attempt)
    return TaskCancelled(task_id=task_id)


task_events = st.tuples(
    st.sampled_from(["queued", "started", "retrying", "completed", "failed", "cancelled"]),
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.integers(min_value=1, max_value=3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(task_events, max_size=60))
def test_counts_match_task_states_under_any_interleaving(
    script: list[tuple[str, str, int]],
) -> None:
    aggregate = SessionAggregate(session_id="s", clock=FakeClock())
    publisher = fed(aggregate)
    ended: dict[str, TaskState] = {}
    # The highest attempt any event named before the task ended.
    highest: dict[str, int] = {}
    for kind, task_id, attempt in script:
        publisher.publish(task_event(kind, task_id, attempt))
        state = aggregate.task_state(task_id)
        if task_id in ended:
            if (
                kind == "queued"
                and ended[task_id] in ("failed", "cancelled")
                and attempt > highest.get(task_id, 0)
            ):
                assert state == "queued", "a later attempt queued is a retry: it reopens"
                del ended[task_id]
                highest[task_id] = attempt
            else:
                assert state == ended[task_id], "an end state is final but for a retry"
        else:
            if kind != "cancelled":  # task_cancelled names no attempt
                highest[task_id] = max(highest.get(task_id, 0), attempt)
            if state in END:
                ended[task_id] = state
        states = {t: aggregate.task_state(t) for t in "abcde"}
        for name in TASK_STATES:
            assert aggregate.count(name) >= 0
            assert aggregate.count(name) == sum(s == name for s in states.values())
        running = sum(s == "running" for s in states.values())
        waiting = sum(s in ("queued", "retrying") for s in states.values())
        assert (aggregate.tasks_running, aggregate.tasks_queued) == (running, waiting)
        for end_state in END:
            assert aggregate.ended(end_state) == sum(s == end_state for s in ended.values())
    snapshot = aggregate.snapshot()
    assert snapshot.tasks_running == aggregate.tasks_running
    assert snapshot.tasks_completed + snapshot.tasks_failed + snapshot.tasks_cancelled == len(ended)


usage_records = st.builds(
    TaskUsage,
    task_id=st.just("t"),
    model=st.sampled_from(["m1", "m2", ""]),
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
    cache_read_tokens=st.integers(0, 10**6),
    cache_write_tokens=st.integers(0, 10**6),
    cost_usd=st.one_of(st.none(), st.floats(0, 10, allow_nan=False)),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(usage_records, max_size=30))
def test_usage_totals_add_up(records: list[TaskUsage]) -> None:
    aggregate = SessionAggregate(session_id="s", clock=FakeClock())
    publisher = fed(aggregate)
    for record in records:
        publisher.publish(record)
    snapshot = aggregate.snapshot()  # validates total == the four kinds
    assert snapshot.input_tokens == sum(r.input_tokens for r in records)
    assert snapshot.cache_write_tokens == sum(r.cache_write_tokens for r in records)
    assert snapshot.total_tokens == sum(r.total_tokens for r in records)
    assert snapshot.unpriced_tokens == sum(r.total_tokens for r in records if r.cost_usd is None)
    priced = [r.cost_usd for r in records if r.cost_usd is not None]
    assert snapshot.estimated_cost_usd == pytest.approx(sum(priced))


def replay(*events: Event) -> SessionAggregate:
    aggregate = SessionAggregate(session_id="s", clock=FakeClock())
    publisher = fed(aggregate)
    for event in events:
        publisher.publish(event)
    return aggregate


def test_a_cancel_racing_a_completion_counts_once() -> None:
    aggregate = replay(
        TaskStarted(task_id="a"),
        TaskCompleted(task_id="a"),
        TaskCancelled(task_id="a", was_running=True),
    )
    assert (
        aggregate.tasks_running,
        aggregate.ended("completed"),
        aggregate.ended("cancelled"),
    ) == (
        0,
        1,
        0,
    )


def test_a_task_that_fails_before_it_starts_leaves_running_alone() -> None:
    aggregate = replay(TaskQueued(task_id="a"), TaskFailed(task_id="a"), TaskStarted(task_id="a"))
    assert (aggregate.tasks_running, aggregate.tasks_queued, aggregate.ended("failed")) == (0, 0, 1)


def test_an_end_for_a_task_never_seen_counts_and_never_goes_negative() -> None:
    aggregate = replay(TaskCancelled(task_id="ghost"), TaskCancelled(task_id="ghost"))
    assert (aggregate.tasks_running, aggregate.ended("cancelled")) == (0, 1)


def test_retrying_counts_as_queued_until_the_next_attempt_starts() -> None:
    aggregate = replay(
        TaskQueued(task_id="a"),
        TaskStarted(task_id="a"),
        TaskRetrying(task_id="a", attempt=1, delay_seconds=2.0),
    )
    assert (aggregate.tasks_running, aggregate.tasks_queued) == (0, 1)
    publisher = fed(aggregate)
    publisher.publish(TaskQueued(task_id="a", attempt=2))
    publisher.publish(TaskStarted(task_id="a", attempt=1))  # stale: attempt 1 is over
    assert (aggregate.tasks_running, aggregate.tasks_queued) == (0, 1)
    publisher.publish(TaskStarted(task_id="a", attempt=2))
    assert (aggregate.tasks_running, aggregate.tasks_queued) == (1, 0)


def test_pause_and_budget_are_tracked() -> None:
    aggregate = replay(ExecutorPaused(by="budget"), BudgetChanged(budget_usd=3.0))
    assert (aggregate.is_paused, aggregate.budget_usd) == (True, 3.0)
    publisher = fed(aggregate)
    publisher.publish(ExecutorResumed())
    assert not aggregate.is_paused


def test_duration_starts_with_the_first_task_and_never_goes_back() -> None:
    clock = FakeClock(now=50.0)
    aggregate = SessionAggregate(session_id="s", clock=clock)
    publisher = fed(aggregate)
    assert aggregate.duration_seconds() == 0
    publisher.publish(TaskStarted(task_id="a"))
    clock.now = 60.9
    assert aggregate.duration_seconds() == 10
    clock.now = 55.0  # a clock that stepped back does not pull the duration back
    assert aggregate.duration_seconds() == 10
    assert aggregate.started_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


PREVIOUS = SessionUpdate(
    duration_seconds=120,
    total_tokens=1000,
    input_tokens=600,
    output_tokens=300,
    cache_read_tokens=90,
    cache_write_tokens=10,
    estimated_cost_usd=1.5,
    tasks_running=2,
    tasks_queued=3,
    is_paused=True,
    session_id="old-session",
    started_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
    tasks_completed=4,
    tasks_failed=1,
    tasks_cancelled=2,
    unpriced_tokens=50,
    budget_usd=2.0,
    budget_remaining_usd=0.5,
)


def test_restore_carries_totals_on_and_live_events_add_to_them() -> None:
    clock = FakeClock(now=0.0)
    aggregate = SessionAggregate(session_id="new", clock=clock)
    aggregate.restore(PREVIOUS)
    restored = aggregate.snapshot()
    assert attrs.evolve(restored, tasks_running=2, tasks_queued=3) == PREVIOUS
    assert (restored.tasks_running, restored.tasks_queued) == (0, 0)

    clock.now = 500.0  # the time the process was down does not count
    publisher = fed(aggregate)
    publisher.publish(TaskStarted(task_id="x", attempt=2))
    publisher.publish(TaskUsage(task_id="x", model="m", input_tokens=5, cost_usd=0.25))
    clock.now = 507.5
    publisher.publish(TaskCompleted(task_id="x", attempt=2))
    after = aggregate.snapshot()
    assert after.duration_seconds == 127
    assert (after.input_tokens, after.total_tokens) == (605, 1005)
    assert after.estimated_cost_usd == pytest.approx(1.75)
    assert after.budget_remaining_usd == pytest.approx(0.25)
    assert (after.tasks_completed, after.tasks_failed, after.tasks_cancelled) == (5, 1, 2)
    assert (after.session_id, after.started_at) == ("old-session", PREVIOUS.started_at)


def test_restore_is_refused_twice_or_after_activity() -> None:
    aggregate = SessionAggregate(session_id="s", clock=FakeClock())
    aggregate.restore(PREVIOUS)
    with pytest.raises(RestoreError, match="already restored"):
        aggregate.restore(PREVIOUS)
    busy = replay(TaskQueued(task_id="a"))
    with pytest.raises(RestoreError, match="before the first task"):
        busy.restore(PREVIOUS)


def test_apply_reports_the_broadcast_each_event_calls_for() -> None:
    aggregate = SessionAggregate(session_id="s", clock=FakeClock())
    codec_publisher = Publisher()
    triggers: list[Trigger | None] = []

    def record(item: Published) -> None:
        triggers.append(aggregate.apply(item))

    codec_publisher.add_listener(record)
    for event in (
        TaskQueued(task_id="a"),
        TaskStarted(task_id="a"),
        TaskStarted(task_id="a"),
        TaskUsage(task_id="a", output_tokens=1),
        TaskRetrying(task_id="a"),
        TaskQueued(task_id="a", attempt=2),
        TaskCancelled(task_id="a"),
        TaskCancelled(task_id="a"),
        ExecutorPaused(),
        BudgetChanged(budget_usd=1.0),
        BudgetChanged(budget_usd=1.0),
    ):
        codec_publisher.publish(event)
    assert triggers == [
        None,
        "task_start",
        None,
        "usage",
        "task_end",
        None,
        "task_end",
        None,
        "pause",
        "budget",
        None,
    ]
