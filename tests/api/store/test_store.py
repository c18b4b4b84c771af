"""The durable store: records, migrations, batching off the trio thread, failures."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from api.store._exceptions import StoreError, StoreOverloadedError, UnknownSessionError
from api.store._recorder import WRITE_CHUNK, StoreRecorder, serve_store_recorder
from api.store._rows import StoreRows
from api.store._schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from api.store._store import SessionStore, UsageTotals
from events import (
    BudgetChanged,
    BudgetExhausted,
    ExecutorPaused,
    ExecutorResumed,
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
)

SID = "sess-1"


def _scripted_run(publisher: Publisher) -> None:
    publisher.publish(BudgetChanged(budget_usd=2.0, by="startup", reason="job file"))
    for task in ("a", "b", "c"):
        publisher.publish(TaskQueued(task_id=task, name=f"task {task}"))
    publisher.publish(TaskStarted(task_id="a", name="task a"))
    publisher.publish(
        TaskUsage(
            task_id="a",
            model="claude-sonnet-4-5",
            provider="anthropic",
            input_tokens=100,
            output_tokens=20,
            cache_read_tokens=50,
            cache_write_tokens=10,
            cost_usd=0.01,
            cost_source="computed",
        )
    )
    publisher.publish(TaskOutput(task_id="a", line="hello"))
    publisher.publish(TaskCompleted(task_id="a", duration_seconds=1.5, exit_code=0))
    publisher.publish(TaskStarted(task_id="b"))
    publisher.publish(TaskUsage(task_id="b", model="mystery", input_tokens=7, output_tokens=3))
    publisher.publish(TaskRetrying(task_id="b", attempt=1, delay_seconds=1.0, error="boom"))
    publisher.publish(TaskStarted(task_id="b", attempt=2))
    publisher.publish(TaskFailed(task_id="b", attempt=2, error="boom again", exit_code=3))
    publisher.publish(ExecutorPaused(by="operator", reason="coffee"))
    publisher.publish(ExecutorResumed(by="operator"))
    publisher.publish(TaskCancelled(task_id="c", reason="cancelled by operator"))
    publisher.publish(BudgetExhausted(budget_usd=2.0, spent_usd=2.0))
    publisher.publish(
        SessionUpdate(
            duration_seconds=12,
            started_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
            tasks_completed=1,
            tasks_failed=1,
            tasks_cancelled=1,
        )
    )


async def _record(store: SessionStore, publisher: Publisher) -> StoreRecorder:
    store.begin_session(SID, job_key="k", job_path="jobs.toml")
    async with trio.open_nursery() as nursery:
        recorder: StoreRecorder = await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id=SID, task_status=task_status
            )
        )
        _scripted_run(publisher)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    return recorder


async def test_every_record_round_trips(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "runcast.db")
    publisher = Publisher()
    recorder = await _record(store, publisher)
    assert not recorder.pending

    session = store.session(SID)
    assert session.job_key == "k"
    assert session.duration_seconds == 12
    assert session.started_at == "2026-11-22T10:00:00.000000Z"
    assert (session.tasks_completed, session.tasks_failed, session.tasks_cancelled) == (1, 1, 1)
    assert session.budget_usd == 2.0
    assert session.is_paused is False
    assert session.usage.input_tokens == 107
    assert session.usage.total_tokens == 190
    assert session.usage.cost_usd == pytest.approx(0.01)
    assert session.usage.unpriced_tokens == 10

    tasks = {task.task_id: task for task in store.tasks(SID)}
    assert tasks["a"].state == "completed"
    assert tasks["a"].name == "task a"
    assert tasks["a"].exit_code == 0
    assert tasks["a"].duration_seconds == 1.5
    assert tasks["b"].state == "failed"
    assert tasks["b"].attempts == 2
    assert tasks["b"].error == "boom again"
    assert tasks["c"].state == "cancelled"

    usage = store.usage_rows(SID)
    assert [(row["task_id"], row["cost_source"]) for row in usage] == [
        ("a", "computed"),
        ("b", "unpriced"),
    ]
    assert usage[0]["provider"] == "anthropic"
    assert usage[1]["cost_usd"] is None
    by_model = store.usage_by_model(SID)
    assert set(by_model) == {"claude-sonnet-4-5", "mystery"}

    kinds = [(c["kind"], c["actor"]) for c in store.controls(SID)]
    assert kinds == [
        ("budget", "startup"),
        ("pause", "operator"),
        ("resume", "operator"),
        ("budget_exhausted", "budget"),
    ]
    history = store.history(SID)
    assert len(history) == publisher.published_total - 1  # snapshots are not history
    assert store.last_seq(SID) == publisher.last_seq - 1
    assert store.integrity_ok()
    store.close()
    store.close()


async def test_paused_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "runcast.db"
    store = SessionStore.open(path)
    publisher = Publisher()
    store.begin_session(SID)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id=SID, task_status=task_status
            )
        )
        publisher.publish(ExecutorPaused(by="operator", reason="review"))
        publisher.publish(BudgetChanged(budget_usd=5.0))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    store.close()
    reopened = SessionStore.open(path)
    session = reopened.session(SID)
    assert session.is_paused is True
    assert session.budget_usd == 5.0
    assert reopened.find_resumable("missing") is None


def test_migration_from_version_one_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=1)
    assert schema_version(conn) == 1
    conn.execute(
        "INSERT INTO sessions (session_id, created_at) VALUES ('old', '2026-01-01T00:00:00Z')"
    )
    conn.execute(
        "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) "
        "VALUES ('old', 't', 1, '2026-01-01T00:00:00Z', 'm', 10, 5, 0, 0, 0.5)"
    )
    conn.close()

    store = SessionStore.open(path)
    assert schema_version(store.conn) == SCHEMA_VERSION == len(MIGRATIONS)
    rows = store.usage_rows("old")
    assert rows[0]["cost_source"] == "computed"
    assert rows[0]["provider"] is None
    assert store.session("old").usage.total_tokens == 15
    assert store.controls("old") == []


def test_migration_from_version_two_tags_usage_with_attempts(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=2)
    conn.execute("INSERT INTO sessions (session_id, created_at) VALUES ('old', 'then')")
    for task_id, attempts in (("once", 1), ("twice", 2)):
        conn.execute(
            "INSERT INTO tasks (session_id, task_id, state, attempts) "
            "VALUES ('old', ?, 'completed', ?)",
            (task_id, attempts),
        )
        conn.execute(
            "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_source) "
            "VALUES ('old', ?, 1, 'then', 'm', 10, 5, 0, 0, 0.5, 'reported')",
            (task_id,),
        )
    conn.close()

    store = SessionStore.open(path)
    assert schema_version(store.conn) == SCHEMA_VERSION
    rows = {row["task_id"]: row for row in store.usage_rows("old")}
    # A task that ran once spent everything in attempt 1; for one that ran twice
    # v2 did not say which attempt spent what, and v3 does not guess.
    assert rows["once"]["attempt"] == 1
    assert rows["twice"]["attempt"] is None
    assert rows["once"]["records"] == 1
    assert rows["once"]["interrupted"] == 0
    assert [task.cancelled_attempt for task in store.tasks("old")] == [None, None]
    session = store.session("old")
    assert session.usage.total_tokens == 30
    assert session.usage.records == 2
    assert session.interrupted == UsageTotals()
    assert store.interrupted_attempts("old") == []
    indexes = {row[1] for row in store.conn.execute("PRAGMA index_list(usage)")}
    assert indexes == {"usage_by_attempt"}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this runcast knows"):
        SessionStore.open(path)


def test_unknown_and_prefix_session_ids(tmp_path: Path) -> None:
    store = SessionStore.open(":memory:")
    store.begin_session("abc123")
    store.begin_session("abd456")
    assert store.resolve("abc") == "abc123"
    with pytest.raises(UnknownSessionError, match="ambiguous"):
        store.resolve("ab")
    with pytest.raises(UnknownSessionError, match="no session 'zzz'"):
        store.resolve("zzz")


def test_event_history_is_pruned_by_size() -> None:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    recorder = StoreRecorder(store, SID)
    publisher = Publisher()
    publisher.add_listener(recorder)
    for n in range(100):
        publisher.publish(TaskOutput(task_id="t", line=str(n)))
    recorder.write_now(recorder.pending)
    assert store.prune_events(SID, keep=10) == 90
    assert len(store.history(SID)) == 10
    assert json.loads(store.history(SID)[0])["data"]["line"] == "90"


class _SlowStore(SessionStore):
    """A store whose writes block until the test lets them through."""

    def __init__(self) -> None:
        super().__init__(":memory:", None)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def write_rows(self, rows: StoreRows) -> None:
        self.entered.set()
        self.release.wait(10)
        self.batches.append(rows.events)


async def test_writes_are_batched_off_the_event_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = _SlowStore()
    publisher = Publisher()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id=SID, flush_interval=0.25, task_status=task_status
            )
        )
        publisher.publish(TaskQueued(task_id="first"))
        await trio.to_thread.run_sync(store.entered.wait)
        # The first batch is stuck on the "disk"; the loop keeps running and
        # keeps accepting events, which pile up in memory for the next batch.
        ticks = 0
        for n in range(100):
            publisher.publish(TaskOutput(task_id="first", line=f"{n}"))
            await trio.sleep(0.01)
            ticks += 1
        assert ticks == 100
        assert store.batches == []
        store.release.set()
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert store.batches[0] == 1  # the first event alone
    assert sum(store.batches) == 1 + 100


async def test_flush_happens_at_least_every_quarter_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    flushed_at: list[float] = []

    async def clocked_write(write: Callable[[], object]) -> None:
        flushed_at.append(trio.current_time())
        write()
        await trio.lowlevel.checkpoint()

    publisher = Publisher()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id=SID, offload=clocked_write, task_status=task_status
            )
        )
        published_at = []
        for n in range(5):
            await trio.sleep(1.3)
            published_at.append(trio.current_time())
            publisher.publish(TaskUsage(task_id="t", model="m", input_tokens=n))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert len(flushed_at) == 5
    for published, flushed in zip(published_at, flushed_at, strict=True):
        assert 0 <= flushed - published <= 0.25
    assert store.usage_totals(SID).input_tokens == 0 + 1 + 2 + 3 + 4


async def test_store_failure_surfaces_and_keeps_records(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "x.db")
    publisher = Publisher()
    store.begin_session(SID)
    store.conn.execute("DROP TABLE usage")  # simulate a broken database
    with pytest.RaisesGroup(pytest.RaisesExc(StoreError, match="writing to store")):
        async with trio.open_nursery() as nursery:
            recorder: StoreRecorder = await nursery.start(
                lambda task_status: serve_store_recorder(
                    store, publisher, session_id=SID, task_status=task_status
                )
            )
            publisher.publish(TaskUsage(task_id="t", model="m", input_tokens=5))
    assert any(isinstance(item.event, TaskUsage) for item in recorder.pending)


def test_overload_applies_backpressure_then_fails_loudly() -> None:
    signals: list[bool] = []
    recorder = StoreRecorder(
        SessionStore.open(":memory:"),
        SID,
        soft_limit=10,
        hard_limit=20,
        on_backpressure=signals.append,
    )
    publisher = Publisher()
    publisher.add_listener(recorder)
    for n in range(5):
        publisher.publish(TaskOutput(task_id="t", line=str(n)))
    assert signals == []
    for n in range(5):
        publisher.publish(TaskOutput(task_id="t", line=str(n)))
    assert signals == [True]
    for n in range(10):
        publisher.publish(TaskOutput(task_id="t", line=str(n)))
    assert isinstance(recorder.failure, StoreOverloadedError)
    assert "fell 20 events behind" in str(recorder.failure)


async def test_big_batches_are_written_in_chunks(autojump_clock: trio.testing.MockClock) -> None:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    chunks: list[int] = []

    async def counting_write(write: Callable[[], object]) -> None:
        write()
        await trio.lowlevel.checkpoint()

    class CountingStore(SessionStore):
        def write_rows(self, rows: StoreRows) -> None:
            chunks.append(len(rows.usage))
            super().write_rows(rows)

    store = CountingStore(store.path, store.conn)
    recorder = StoreRecorder(store, SID, soft_limit=100_000, offload=counting_write)
    publisher = Publisher()
    publisher.add_listener(recorder)
    for n in range(2_500):
        publisher.publish(TaskUsage(task_id="t", model="m", input_tokens=n))
    await recorder.flush()
    assert WRITE_CHUNK == 1_000
    assert chunks == [1_000, 1_000, 500]  # one transaction per chunk of events
    assert store.usage_totals(SID).records == 2_500


async def test_producers_can_wait_for_the_store_to_catch_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    publisher = Publisher()
    async with trio.open_nursery() as nursery:
        recorder: StoreRecorder = await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id=SID, soft_limit=50, task_status=task_status
            )
        )
        submitted = 0
        for n in range(1_000):
            if recorder.backpressure:
                await recorder.wait_caught_up()
            publisher.publish(TaskQueued(task_id=f"t{n}"))
            submitted += 1
            assert len(recorder.pending) <= 50
        nursery.cancel_scope.cancel()
    assert submitted == 1_000
    assert len(store.tasks(SID)) == 1_000


async def test_recorder_prunes_history_to_its_bound() -> None:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    publisher = Publisher()
    recorder = StoreRecorder(store, SID, history_keep=5)
    publisher.add_listener(recorder)
    for n in range(20):
        publisher.publish(TaskOutput(task_id="t", line=str(n)))
    await recorder.flush()
    await recorder.prune_history()
    assert len(store.history(SID)) == 5
