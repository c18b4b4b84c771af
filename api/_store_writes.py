"""The SQL that writes a run of events' rows (``_store_rows.StoreRows``).

Rows go in as multi-row ``INSERT ... VALUES (...), (...)`` statements of up to
64 rows rather than ``executemany``: the sqlite3 module lets go of the GIL
around every statement it steps, so one row per statement made the store's
thread queue for the GIL behind the trio thread once per row (measured: 51 us a
row with a busy trio thread, 9 us in batches of 100; 40 % less CPU alone).
Values that are None are written into the statement as NULL, never bound:
binding None or a bool costs the sqlite3 module an adaptation lookup, ten times
an int or a str. So each statement is one of a few shapes, built once, cached.
"""

from __future__ import annotations

import functools
import itertools
import operator
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ._store_rows import StoreRows, TaskKey, UsageKey

#: Rows per statement: batches of 64, then 8, then 1 (three sizes per shape keep
#: the statement cache small; 64 rows of 14 values stay under SQLite's oldest
#: limit of 999 bound values).
_BATCHES = (64, 8, 1)

_SESSION_UPDATES: dict[str, str] = {
    "paused": "UPDATE sessions SET is_paused = ? WHERE session_id = ?",
    "budget": "UPDATE sessions SET budget_usd = ? WHERE session_id = ?",
    "snapshot": """
        UPDATE sessions SET started_at = COALESCE(?, started_at), duration_seconds = ?,
            tasks_completed = ?, tasks_failed = ?, tasks_cancelled = ?
        WHERE session_id = ?
    """,
}
_CONTROL = """
    INSERT INTO controls (session_id, seq, at, kind, actor, reason, budget_usd)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_EVENT = ("INSERT OR REPLACE INTO events (session_id, seq, wire) VALUES", "(?, ?, ?)", "")
_TASK_FINISH = ("ended_at", "duration_seconds", "exit_code", "cancelled_attempt")
_USAGE_HEAD = (
    "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, cost_source, records, "
    "provider, cost_usd, attempt) VALUES"
)

# A statement kind: (head, one row's VALUES tuple, tail).
Shape = tuple[str, str, str]


@functools.cache
def task_shape(key: TaskKey) -> Shape:
    """The upsert for a ``TaskRow.bound`` key: only the column groups its events
    set are written; the others keep what the row holds (or their defaults)."""
    start, finish, error, *nulls = key
    columns: list[tuple[str, bool]] = [("name", False), ("state", False)]
    if start:
        columns += [("attempts", False), ("started_at", False)]
    if finish:
        columns += zip(_TASK_FINISH, nulls[:4], strict=True)
    if error:
        columns.append(("error", nulls[4]))
    names = ", ".join(name for name, _ in columns)
    values = ", ".join("NULL" if null else "?" for _, null in columns)
    updates = "".join(f", {name} = excluded.{name}" for name, _ in columns[2:])
    return (
        f"INSERT INTO tasks (session_id, task_id, {names}) VALUES",
        f"(?, ?, {values})",
        "ON CONFLICT (session_id, task_id) DO UPDATE SET "
        "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END, "
        f"state = excluded.state{updates}",
    )


@functools.cache
def usage_shape(key: UsageKey) -> Shape:
    """The insert for usage rows whose provider / cost / attempt are NULL as ``key`` says."""
    nullable = ", ".join("NULL" if null else "?" for null in key)
    return (_USAGE_HEAD, f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {nullable})", "")


@functools.cache
def _statement(shape: Shape, rows: int) -> str:
    head, values, tail = shape
    return f"{head} {', '.join(itertools.repeat(values, rows))} {tail}"


def _insert(conn: sqlite3.Connection, shape: Shape, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` in order, up to 64 per statement."""
    done = 0
    for size in _BATCHES:
        while len(rows) - done >= size:
            batch = rows[done : done + size]
            done += size
            conn.execute(_statement(shape, size), [value for row in batch for value in row])


def _runs(keyed: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, list[Any]]]:
    """Consecutive rows with the same key, together, in order."""
    for key, group in itertools.groupby(keyed, key=operator.itemgetter(0)):
        yield key, [params for _, params in group]


def write_rows(conn: sqlite3.Connection, *, rows: StoreRows) -> None:
    """Every statement for ``rows``; the caller holds the transaction."""
    sid = rows.session_id
    _insert(conn, _EVENT, rows.history)
    # Tasks first seen queued in this run may be new rows: they go in event order,
    # so rowids keep the order tasks were queued in. The others exist already;
    # grouping them by shape makes longer statements.
    new: list[tuple[TaskKey, tuple[Any, ...]]] = []
    known: list[tuple[TaskKey, tuple[Any, ...]]] = []
    for row in rows.tasks.values():
        (new if row.inserts else known).append(row.bound(sid))
    known.sort(key=operator.itemgetter(0))
    for key, params in itertools.chain(_runs(new), _runs(known)):
        _insert(conn, task_shape(key), params)
    for key, params in _runs(sorted(rows.usage, key=operator.itemgetter(0))):
        _insert(conn, usage_shape(key), params)
    if rows.controls:
        conn.executemany(_CONTROL, rows.controls)
    for name, values in rows.session_updates:
        conn.execute(_SESSION_UPDATES[name], values)
