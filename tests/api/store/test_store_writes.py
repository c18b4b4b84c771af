"""How a run of events reaches SQLite: few statements, within the connection's limits."""

from __future__ import annotations

import sqlite3

from api.store._recorder import StoreRecorder
from api.store._store import SessionStore
from api.store._writes import _batch_sizes
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


def test_batch_sizes_are_powers_of_two_within_the_limits() -> None:
    assert _batch_sizes(250_000, 2) == (256, 128, 64, 32, 16, 8, 4, 2, 1)
    assert _batch_sizes(250_000, 13) == (64, 32, 16, 8, 4, 2, 1)  # at most 1,024 values
    assert _batch_sizes(999, 14) == (64, 32, 16, 8, 4, 2, 1)  # 897 bound values <= 999
    assert _batch_sizes(30, 14) == (2, 1)  # 29 bound values <= 30


def test_a_run_takes_few_statements() -> None:
    """Every statement lets go of the GIL and queues to take it back behind the
    trio thread, so a run of 1,000 events must not take one per row, nor the
    22 history statements of batches of 64, 8 and 1."""
    items = _no_op_tasks(250)  # 1,000 events
    store = _store()
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    StoreRecorder(store, SID).write_now(items)
    store.conn.set_trace_callback(None)
    inserts = [sql for sql in statements if sql.lstrip().startswith("INSERT")]
    history = [sql for sql in inserts if "INTO events" in sql]
    # History: 1,000 = 3 x 256 + 128 + 64 + 32 + 8. Tasks: 250 rows of 8 values,
    # 128 + 64 + 32 + 16 + 8 + 2. Usage: 250 rows of 12 values, 3 x 64 + 32 + 16 + 8 + 2.
    assert len(history) == 7
    assert len(inserts) == 7 + 6 + 7
    assert store.tasks(SID)[-1].state == "completed"
    assert store.usage_totals(SID).records == 250


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
