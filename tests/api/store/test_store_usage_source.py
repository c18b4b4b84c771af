"""Issue 19: each usage row keeps the output format it was read from (schema v5)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio
import trio.testing

from api.store._recorder import StoreRecorder, serve_store_recorder
from api.store._schema import SCHEMA_VERSION, migrate, schema_version
from api.store._store import SessionStore
from events import Publisher, TaskQueued, TaskUsage

SID = "sess-1"


async def _record(store: SessionStore, events: list[TaskUsage | TaskQueued]) -> None:
    store.begin_session(SID)
    publisher = Publisher()
    async with trio.open_nursery() as nursery:
        recorder: StoreRecorder = await nursery.start(
            lambda task_status: serve_store_recorder(
                store, publisher, session_id=SID, task_status=task_status
            )
        )
        for event in events:
            publisher.publish(event)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert not recorder.pending


async def test_usage_rows_keep_their_source_and_tasks_list_theirs(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "runcast.db")
    await _record(
        store,
        [
            TaskQueued(task_id="a"),
            TaskQueued(task_id="b"),
            TaskUsage(task_id="a", model="m", input_tokens=1, source="claude-code"),
            TaskUsage(task_id="b", model="m", input_tokens=2),  # through the API: no format
            TaskUsage(task_id="a", model="n", input_tokens=3, cost_usd=0.5, source="claude-code"),
            TaskUsage(task_id="a", model="m", input_tokens=4, source="runcast"),
        ],
    )
    rows = store.usage_rows(SID)
    assert [(row["task_id"], row["source"]) for row in rows] == [
        ("a", "claude-code"),
        ("b", ""),
        ("a", "claude-code"),
        ("a", "runcast"),
    ]
    assert store.usage_sources(SID) == {"a": ["claude-code", "runcast"]}


def test_a_version_four_store_opens_and_its_rows_have_no_source(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=4)
    conn.execute("INSERT INTO sessions (session_id, created_at) VALUES ('old', 'then')")
    conn.execute(
        "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_source, attempt) "
        "VALUES ('old', 't', 1, 'then', 'm', 10, 5, 0, 0, 0.5, 'reported', 1)"
    )
    conn.close()
    store = SessionStore.open(path)
    assert schema_version(store.conn) == SCHEMA_VERSION == 6
    [row] = store.usage_rows("old")
    assert (row["source"], row["input_tokens"]) == ("", 10)
    assert store.usage_sources("old") == {}
