"""The SQL that writes a run of events' rows (``_rows.StoreRows``).

Rows go in as multi-row ``INSERT ... VALUES (...), (...)`` statements rather
than ``executemany``: the sqlite3 module lets go of the GIL around every
statement it steps, and taking it back means queueing behind the busy trio
thread (up to a switch interval, 5 ms), so the fewer statements a run takes
the better (bench/HISTORY.md#rows-built-and-written-in-the-worker-thread-kept).
A statement holds up to 256 rows and 1,024 values (no more than the
connection allows), in sizes that are powers of two:
a run of 1,000 history rows takes 7 statements (was 22 in sizes 64, 8, 1).
The session id is bound once per statement, as ``?1``.
Values that are None are written into the statement as NULL, never bound:
binding None or a bool costs the sqlite3 module an adaptation lookup, many
times an int or a str. So each statement is one of a few shapes, built once, cached.
"""

from __future__ import annotations

import functools
import itertools
import operator
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ._rows import StoreRows, TaskKey, UsageKey

#: The most rows, and bound values, one statement holds: preparing a statement
#: costs about as much as running it a few times, and a long step for wide rows
#: (bench/HISTORY.md#leaner-row-building-and-power-of-two-statements-kept), so
#: wide rows go in shorter statements (history rows have 2 values).
_MAX_ROWS = 256
_MAX_VALUES = 1_024

_SESSION_UPDATES: dict[str, str] = {
    "paused": "UPDATE sessions SET is_paused = ? WHERE session_id = ?",
    "budget": "UPDATE sessions SET budget_usd = ? WHERE session_id = ?",
    "snapshot": """
        UPDATE sessions SET started_at = COALESCE(?, started_at), duration_seconds = ?,
            tasks_completed = ?, tasks_failed = ?, tasks_cancelled = ?
        WHERE session_id = ?
    """,
}
_CONTROL_HEAD = (
    "INSERT INTO controls (session_id, seq, at, kind, actor, reason, budget_usd, concurrency) "
    "VALUES"
)
_CONTROL_ROW = "(?1, ?, ?, ?, ?, ?, ?, ?)"
_EVENT = ("INSERT OR REPLACE INTO events (session_id, seq, wire) VALUES", "(?1, ?, ?)", "")
_TASK_FINISH = ("ended_at", "duration_seconds", "exit_code", "cancelled_attempt")
_USAGE_HEAD = (
    "INSERT INTO usage (session_id, task_id, seq, recorded_at, model, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, cost_source, records, "
    "provider, cost_usd, attempt, source) VALUES"
)

# A statement kind: (head, one row's VALUES tuple, tail).
Shape = tuple[str, str, str]


@functools.cache
def task_shape(key: TaskKey) -> Shape:
    """The upsert for a ``TaskTableRow.bound`` key: only the column groups its events
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
        f"(?1, ?, {values})",
        "ON CONFLICT (session_id, task_id) DO UPDATE SET "
        "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END, "
        f"state = excluded.state{updates}",
    )


@functools.cache
def usage_shape(key: UsageKey) -> Shape:
    """The insert for usage rows whose provider / cost / attempt are NULL, and whose
    source is "", as ``key`` says (a key without the fourth: source "")."""
    provider, cost, attempt, *rest = key
    nullable = ", ".join("NULL" if null else "?" for null in (provider, cost, attempt))
    source = "''" if not rest or rest[0] else "?"
    return (_USAGE_HEAD, f"(?1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {nullable}, {source})", "")


@functools.cache
def _statement(shape: Shape, rows: int) -> str:
    head, values, tail = shape
    return f"{head} {', '.join(itertools.repeat(values, rows))} {tail}"


@functools.cache
def _batch_sizes(variable_limit: int, per_row: int) -> tuple[int, ...]:
    """Rows per statement, largest first: powers of two under both limits."""
    most = max(1, min(_MAX_ROWS, _MAX_VALUES // per_row, (variable_limit - 1) // per_row))
    return tuple(1 << power for power in reversed(range(most.bit_length())))


def _insert(
    conn: sqlite3.Connection, shape: Shape, session_id: str, flat: list[Any], per_row: int
) -> None:
    """Insert the rows of ``flat`` (``per_row`` values each) in order."""
    count = len(flat) // per_row
    done = 0
    for size in _batch_sizes(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), per_row):
        while count - done >= size:
            start = done * per_row
            done += size
            params = [session_id]
            params += flat[start : done * per_row]
            conn.execute(_statement(shape, size), params)
    if done != count:
        raise AssertionError(f"{count - done} rows left unwritten")


def _runs(keyed: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, list[Any]]]:
    """Consecutive rows with the same key, together, in order."""
    for key, group in itertools.groupby(keyed, key=operator.itemgetter(0)):
        yield key, [params for _, params in group]


def _insert_rows(
    conn: sqlite3.Connection, shape: Shape, session_id: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    _insert(conn, shape, session_id, list(itertools.chain.from_iterable(rows)), len(rows[0]))


def write_rows(conn: sqlite3.Connection, *, rows: StoreRows) -> None:
    """Every statement for ``rows``; the caller holds the transaction."""
    sid = rows.session_id
    if rows.history:
        _insert(conn, _EVENT, sid, rows.history, 2)
    # Tasks first seen queued in this run may be new rows: they go in event order,
    # so rowids keep the order tasks were queued in. The others exist already;
    # grouping them by shape makes longer statements.
    new: list[tuple[TaskKey, tuple[Any, ...]]] = []
    known: list[tuple[TaskKey, tuple[Any, ...]]] = []
    for row in rows.tasks.values():
        (new if row.inserts else known).append(row.bound())
    known.sort(key=operator.itemgetter(0))
    for key, params in itertools.chain(_runs(new), _runs(known)):
        _insert_rows(conn, task_shape(key), sid, params)
    for key, params in _runs(sorted(rows.usage, key=operator.itemgetter(0))):
        _insert_rows(conn, usage_shape(key), sid, params)
    if rows.controls:
        _insert_rows(conn, (_CONTROL_HEAD, _CONTROL_ROW, ""), sid, rows.controls)
    for name, values in rows.session_updates:
        conn.execute(_SESSION_UPDATES[name], values)
