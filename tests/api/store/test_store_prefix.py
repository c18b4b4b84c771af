"""What a crash can leave in the store: always a prefix of the event stream.

Each flush writes runs of events, one transaction each; within a run a task's
row is written once with its final state. These tests cut the same stream into
runs of every size and check, after every committed transaction, that the
database is exactly what writing that prefix in one go gives, and that no
stored completion is ever missing usage its task recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import trio

from api.store import _recorder as _store_recorder
from api.store._recorder import StoreRecorder
from api.store._rows import StoreRows, wire_time
from api.store._store import SessionStore
from events import (
    BudgetChanged,
    Event,
    EventCodec,
    ExecutorPaused,
    ExecutorResumed,
    Published,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskOutput,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskUsage,
    format_time,
)

SID = "s"


def _usage(task_id: str, tokens: int) -> TaskUsage:
    return TaskUsage(
        task_id=task_id,
        model="m",
        input_tokens=tokens,
        output_tokens=1,
        cost_usd=tokens / 1024,
        cost_source="reported",
    )


def _stream() -> list[Event]:
    """Three tasks interleaved: one completes, one fails and retries, one is cancelled mid-run."""
    return [
        BudgetChanged(budget_usd=5.0, by="startup"),
        TaskQueued(task_id="a", name="task a"),
        TaskQueued(task_id="b"),
        TaskQueued(task_id="c"),
        TaskStarted(task_id="a", name="task a"),
        _usage("a", 10),
        TaskStarted(task_id="b"),
        _usage("b", 20),
        TaskOutput(task_id="a", line="working"),
        _usage("a", 11),
        TaskRetrying(task_id="b", attempt=1, error="exit status 1"),
        SessionUpdate(duration_seconds=1, started_at=datetime(2026, 11, 22, tzinfo=UTC)),
        TaskStarted(task_id="c"),
        _usage("c", 30),
        ExecutorPaused(reason="look"),
        _usage("a", 12),
        TaskCompleted(task_id="a", duration_seconds=2.0, exit_code=0),
        ExecutorResumed(),
        TaskStarted(task_id="b", attempt=2),
        _usage("b", 21),
        TaskCancelled(task_id="c", reason="cancelled by operator", was_running=True),
        _usage("b", 22),
        TaskFailed(task_id="b", attempt=2, error="exit status 2", exit_code=2),
        SessionUpdate(duration_seconds=3, tasks_completed=1, tasks_failed=1, tasks_cancelled=1),
    ]


def _published(events: list[Event]) -> list[Published]:
    publisher = Publisher()
    items: list[Published] = []
    publisher.add_listener(items.append)
    for event in events:
        publisher.publish(event)
    return items


_TABLES = {
    "sessions": "SELECT * FROM sessions",
    "tasks": "SELECT * FROM tasks ORDER BY rowid",
    "usage": "SELECT * FROM usage ORDER BY id",
    "controls": "SELECT * FROM controls ORDER BY id",
    "events": "SELECT * FROM events ORDER BY seq",
}


def _dump(store: SessionStore) -> dict[str, list[tuple[Any, ...]]]:
    dump = {name: store.conn.execute(sql).fetchall() for name, sql in _TABLES.items()}
    # created_at is the moment begin_session ran: the one column two stores never share.
    dump["sessions"] = [row[:4] + row[5:] for row in dump["sessions"]]
    return dump


def _written_in_one_go(items: list[Published]) -> dict[str, list[tuple[Any, ...]]]:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    StoreRecorder(store, SID).write_now(items)
    return _dump(store)


def _full_usage(items: list[Published], task_id: str) -> int:
    return sum(
        item.event.input_tokens
        for item in items
        if isinstance(item.event, TaskUsage) and item.task_id == task_id
    )


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 1_000])
async def test_every_transaction_leaves_a_prefix_of_the_stream(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store_recorder, "WRITE_CHUNK", chunk)
    items = _published(_stream())
    after_each: list[dict[str, list[tuple[Any, ...]]]] = []

    class LookingStore(SessionStore):
        def write_rows(self, rows: StoreRows) -> None:
            super().write_rows(rows)
            after_each.append(_dump(self))

    opened = SessionStore.open(":memory:")
    store = LookingStore(opened.path, opened.conn)
    store.begin_session(SID)
    recorder = StoreRecorder(store, SID)

    async def write_here(write: Callable[[], object]) -> None:
        write()
        await trio.lowlevel.checkpoint()

    recorder.offload = write_here
    for item in items:
        recorder(item)
    assert await recorder.flush() == len(items)

    assert len(after_each) == -(-len(items) // chunk)
    for index, state in enumerate(after_each):
        prefix = items[: min(len(items), (index + 1) * chunk)]
        assert state == _written_in_one_go(prefix), f"after transaction {index + 1}"
        # What a crash relies on: a stored end never lacks usage its task recorded.
        for _sid, task_id, _name, task_state, *_ in state["tasks"]:
            if task_state in ("completed", "failed", "cancelled"):
                stored = sum(row[6] for row in state["usage"] if row[2] == task_id)
                assert stored == _full_usage(items, task_id), (index, task_id)
    assert after_each[-1] == _written_in_one_go(items)
    ended = {row[1] for row in after_each[-1]["tasks"] if row[3] != "running"}
    assert ended == {"a", "b", "c"}  # the check above did look at every task


async def test_final_rows_are_what_the_events_say() -> None:
    items = _published(_stream())
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    StoreRecorder(store, SID).write_now(items)
    tasks = {task.task_id: task for task in store.tasks(SID)}
    assert [task.task_id for task in store.tasks(SID)] == ["a", "b", "c"]
    assert (tasks["a"].state, tasks["a"].name, tasks["a"].attempts) == ("completed", "task a", 1)
    assert (tasks["a"].exit_code, tasks["a"].duration_seconds, tasks["a"].error) == (0, 2.0, None)
    assert (tasks["b"].state, tasks["b"].attempts, tasks["b"].error) == (
        "failed",
        2,
        "exit status 2",
    )
    assert tasks["c"].state == "cancelled"
    assert tasks["c"].cancelled_attempt == 1
    assert tasks["a"].cancelled_attempt is None
    attempts = [(row["task_id"], row["attempt"]) for row in store.usage_rows(SID)]
    assert attempts == [
        ("a", 1),
        ("b", 1),
        ("a", 1),
        ("c", 1),
        ("a", 1),
        ("b", 2),
        ("b", 2),
    ]
    session = store.session(SID)
    assert session.usage.input_tokens == 10 + 11 + 12 + 20 + 21 + 22 + 30
    assert session.usage.records == 7
    assert (session.tasks_completed, session.tasks_failed, session.tasks_cancelled) == (1, 1, 1)
    assert session.started_at == "2026-11-22T00:00:00.000000Z"
    assert session.is_paused is False
    assert session.budget_usd == 5.0


async def test_coalesced_usage_counts_its_source_records() -> None:
    usage = TaskUsage(task_id="t", model="m", input_tokens=330, records=33)
    items = _published([TaskQueued(task_id="t"), TaskStarted(task_id="t"), usage])
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    StoreRecorder(store, SID).write_now(items)
    (row,) = store.usage_rows(SID)
    assert (row["records"], row["attempt"], row["provider"], row["cost_usd"]) == (33, 1, None, None)
    assert store.usage_totals(SID).records == 33
    assert store.usage_totals(SID).unpriced_tokens == 330


async def test_a_retry_start_clears_the_failed_attempts_end() -> None:
    items = _published(
        [
            TaskQueued(task_id="t"),
            TaskStarted(task_id="t"),
            TaskFailed(task_id="t", error="boom", exit_code=1, duration_seconds=1.0),
            TaskStarted(task_id="t", attempt=2),
        ]
    )
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    recorder = StoreRecorder(store, SID)
    recorder.write_now(items[:3])
    (failed,) = store.tasks(SID)
    assert (failed.exit_code, failed.error, failed.ended_at is not None) == (1, "boom", True)
    recorder.write_now(items[3:])
    (running,) = store.tasks(SID)
    assert (running.state, running.attempts) == ("running", 2)
    assert (running.exit_code, running.error, running.ended_at, running.duration_seconds) == (
        None,
        None,
        None,
        None,
    )
    assert running.started_at is not None


def test_stored_times_are_the_wire_format() -> None:
    """The store cuts each event's time out of its wire text: it is ``format_time``'s."""
    codec = EventCodec()
    base = datetime(2026, 11, 22, 23, 59, 59, 999_999, tzinfo=UTC)
    moments = [
        base,
        base + timedelta(microseconds=1),  # a new second, day, month... at once
        base.astimezone(timezone(timedelta(hours=2))),  # not UTC: converted
        datetime(2026, 11, 22, 0, 0, 0, tzinfo=UTC),  # microsecond 0 keeps its digits
    ]
    # Task ids and texts that hold the frame's own key: escaped, so never a match.
    tricky = 'a,"time":"1999-01-01T00:00:00.000000Z'
    events: list[Event] = [
        TaskQueued(task_id=tricky, name=tricky),
        TaskStarted(task_id="t"),
        TaskOutput(task_id=tricky, line=',"time":"x"'),
        TaskFailed(task_id="t", error=',"time":"x"'),
        BudgetChanged(budget_usd=1.0, by="operator", reason=',"time":"x"'),
        SessionUpdate(started_at=base),
    ]
    for seq, (moment, event) in enumerate(
        ((moment, event) for moment in moments for event in events), start=1
    ):
        item = codec.publish(seq, moment, event)
        assert wire_time(item) == format_time(moment)
        assert json.loads(item.wire)["time"] == wire_time(item)
