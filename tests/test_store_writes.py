"""How a run of events reaches SQLite: few statements, within the connection's limits."""

from __future__ import annotations

import sqlite3

from api._store import SessionStore
from api._store_recorder import StoreRecorder
from api._store_writes import _most_rows
from events import Published, Publisher, TaskCompleted, TaskQueued, TaskStarted, TaskUsage

SID = "s"


def _no_op_tasks(count: int) -> list[Published]:
    """Each task queued, started, given one usage record and completed, as a pipeline would."""
    publisher = Publisher()
    items: list[Published] = []
    publisher.add_listener(items.append)
    for n in range(count):
        publisher.publish(TaskQueued(task_id=f"t{n}", name=f"task {n}"))
    for n in range(count):
        publisher.publish(TaskStarted(task_id=f"t{n}"))
        publisher.publish(TaskUsage(task_id=f"t{n}", model="m", input_tokens=n, cost_usd=0.5))
        publisher.publish(TaskCompleted(task_id=f"t{n}", duration_seconds=0.25, exit_code=0))
    return items


def _store() -> SessionStore:
    store = SessionStore.open(":memory:")
    store.begin_session(SID)
    return store


def _contents(store: SessionStore) -> tuple[object, ...]:
    return (
        store.tasks(SID),
        store.usage_rows(SID),
        store.history(SID),
        store.usage_totals(SID),
    )


def test_statements_hold_a_power_of_two_rows_within_the_limits() -> None:
    assert _most_rows(250_000, 2) == 4_096
    assert _most_rows(250_000, 13) == 2_048  # at most 32,768 values
    assert _most_rows(999, 14) == 64  # 897 bound values <= 999
    assert _most_rows(30, 14) == 2  # 29 bound values <= 30


def test_a_run_takes_one_statement_per_kind_of_row() -> None:
    """Every statement lets go of the GIL and queues to take it back behind the
    trio thread, so a run of 1,000 events must not take one per row, nor the
    20 of batches split in powers of two."""
    items = _no_op_tasks(250)  # 1,000 events
    store = _store()
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    StoreRecorder(store, SID).write_now(items)
    store.conn.set_trace_callback(None)
    inserts = [sql for sql in statements if sql.lstrip().startswith("INSERT")]
    # History, tasks (all new, queued and completed in the run: one shape), usage.
    assert [sql.split("(")[0].split()[-1] for sql in inserts] == ["events", "tasks", "usage"]
    assert store.tasks(SID)[-1].state == "completed"
    assert store.usage_totals(SID).records == 250
    assert len(store.history(SID)) == 1_000


def test_rows_padded_to_a_power_of_two_are_not_written() -> None:
    # 3 tasks: statements of 4 rows, one of them skipped; "0" is a task id like any other.
    publisher = Publisher()
    items: list[Published] = []
    publisher.add_listener(items.append)
    for task_id in ("0", "a", "b"):
        publisher.publish(TaskQueued(task_id=task_id))
        publisher.publish(TaskUsage(task_id=task_id, model="m", input_tokens=1))
    store = _store()
    StoreRecorder(store, SID).write_now(items)
    assert [task.task_id for task in store.tasks(SID)] == ["0", "a", "b"]
    assert len(store.usage_rows(SID)) == 3
    assert len(store.history(SID)) == 6


def test_a_connection_with_few_bound_values_writes_every_row() -> None:
    items = _no_op_tasks(40)
    roomy = _store()
    StoreRecorder(roomy, SID).write_now(items)
    tight = _store()
    tight.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)
    StoreRecorder(tight, SID).write_now(items)
    assert _contents(tight) == _contents(roomy)
    assert len(tight.tasks(SID)) == 40
    assert len(tight.history(SID)) == len(items)
