"""Whatever fails inside a store write is a StoreError, and the transaction is rolled back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio

from api.store._exceptions import StoreError
from api.store._recorder import StoreRecorder, serve_store_recorder
from api.store._rows import StoreRows
from api.store._store import SessionStore
from events import (
    ExecutorPaused,
    Publisher,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)

SID = "sess-1"
TOO_BIG = 2**63  # one more than a SQLite INTEGER holds


def _store(tmp_path: Path) -> SessionStore:
    store = SessionStore.open(tmp_path / "x.db")
    store.begin_session(SID)
    return store


def _counts(store: SessionStore) -> list[int]:
    """Rows in the events, tasks and usage tables."""
    return [
        store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("events", "tasks", "usage")
    ]


def _rows_with_usage(input_tokens: int) -> StoreRows:
    """History, a task and one usage row, as the recorder builds them (no checks of its own)."""
    rows = StoreRows(SID, history=[1, '{"seq":1}', 2, '{"seq":2}'])
    params = ("t", 2, "2026-11-22T10:00:00.000000Z", "m", input_tokens, 0, 0, 0, "unpriced", 1)
    rows.usage.append(((True, True, True), params))  # provider, cost and attempt NULL
    return rows


def test_an_int_sqlite_cannot_hold_is_a_store_error_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    rows = _rows_with_usage(TOO_BIG)
    with pytest.raises(StoreError, match="OverflowError: Python int too large") as caught:
        store.write_rows(rows)
    assert isinstance(caught.value.__cause__, OverflowError)
    # The history rows written before the failing usage row were rolled back with it.
    assert _counts(store) == [0, 0, 0]
    assert not store.conn.in_transaction
    # The connection is usable: the next transaction goes through.
    store.write_rows(_rows_with_usage(5))
    assert store.usage_totals(SID).input_tokens == 5


def test_an_interruption_rolls_back_and_goes_on_as_it_is(tmp_path: Path) -> None:
    store = _store(tmp_path)

    def interrupted(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO events (session_id, seq, wire) VALUES (?, 1, '{}')", (SID,))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store._transaction(interrupted)
    assert not store.conn.in_transaction
    assert _counts(store) == [0, 0, 0]


def test_pruning_a_broken_store_is_a_store_error(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.conn.execute("DROP TABLE events")
    with pytest.raises(StoreError, match="no such table: events"):
        store.prune_events(SID, keep=10)


@pytest.mark.parametrize(
    "field", ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "records"]
)
def test_the_recorder_names_a_count_the_store_cannot_hold(tmp_path: Path, field: str) -> None:
    store = _store(tmp_path)
    publisher = Publisher()
    recorder = StoreRecorder(store, SID)
    publisher.add_listener(recorder)
    publisher.publish(TaskQueued(task_id="big"))
    count: dict[str, Any] = {field: TOO_BIG}
    publisher.publish(TaskUsage(task_id="big", model="m", **count))
    with pytest.raises(
        StoreError,
        match=rf"usage of task 'big': {field} = {TOO_BIG} is more than the store holds",
    ):
        recorder.write_now(list(recorder.pending))
    assert _counts(store) == [0, 0, 0]


async def test_a_failed_chunk_stays_pending_and_fails_the_recorder(tmp_path: Path) -> None:
    store = _store(tmp_path)
    publisher = Publisher()
    with pytest.RaisesGroup(
        pytest.RaisesExc(StoreError, match="input_tokens = 9223372036854775808")
    ):
        async with trio.open_nursery() as nursery:
            recorder: StoreRecorder = await nursery.start(
                lambda task_status: serve_store_recorder(
                    store, publisher, session_id=SID, task_status=task_status
                )
            )
            publisher.publish(TaskQueued(task_id="big"))
            publisher.publish(TaskUsage(task_id="big", model="m", input_tokens=TOO_BIG))
    assert [item.seq for item in recorder.pending] == [1, 2]
    assert isinstance(recorder.failure, StoreError)
    assert _counts(store) == [0, 0, 0]


def test_text_utf8_cannot_hold_is_stored_escaped(tmp_path: Path) -> None:
    store = _store(tmp_path)
    publisher = Publisher()
    recorder = StoreRecorder(store, SID)
    publisher.add_listener(recorder)
    # A task's JSON output can carry "\ud800"; a WebSocket client's reason too.
    publisher.publish(TaskQueued(task_id="t", name="n\udcff"))
    publisher.publish(TaskStarted(task_id="t"))
    publisher.publish(TaskUsage(task_id="t", model="a\ud800b", provider="p\udfff", input_tokens=3))
    publisher.publish(TaskFailed(task_id="t", error="boom \ud83d"))
    publisher.publish(ExecutorPaused(by="operator", reason="r\ud800 é"))
    recorder.write_now(list(recorder.pending))
    [usage] = store.usage_rows(SID)
    assert (usage["model"], usage["provider"], usage["input_tokens"]) == (
        "a\\ud800b",
        "p\\udfff",
        3,
    )
    [task] = store.tasks(SID)
    assert (task.name, task.error) == ("n\\udcff", "boom \\ud83d")
    assert store.controls(SID)[0]["reason"] == "r\\ud800 é"
    # The history keeps each event exactly (its wire text escapes them).
    assert store.history(SID) == [item.wire for item in recorder.pending]


def test_a_count_too_large_is_named_even_behind_text_to_escape(tmp_path: Path) -> None:
    store = _store(tmp_path)
    publisher = Publisher()
    recorder = StoreRecorder(store, SID)
    publisher.add_listener(recorder)
    publisher.publish(TaskQueued(task_id="t", name="n\udcff"))
    publisher.publish(TaskUsage(task_id="t", model="m", output_tokens=TOO_BIG))
    with pytest.raises(StoreError, match=f"output_tokens = {TOO_BIG} is more than"):
        recorder.write_now(list(recorder.pending))
    assert _counts(store) == [0, 0, 0]
