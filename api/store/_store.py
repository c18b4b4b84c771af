"""The durable store: SQLite (WAL) holding sessions, tasks, usage, controls and history.

Every method here is synchronous and touches the database; the recorder calls
the write path from a worker thread so the trio thread never waits on the disk.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs

from events import SessionUpdate, parse_time

from ._exceptions import StoreError, UnknownSessionError
from ._rows import StoreRows
from ._schema import migrate
from ._sums import UsageTotals as UsageTotals  # re-exported: its home before
from ._sums import sum_usage
from ._writes import write_rows

MEMORY = ":memory:"
_T = TypeVar("_T")


@attrs.frozen
class StoredTask:
    task_id: str
    name: str
    state: str
    attempts: int
    started_at: str | None
    ended_at: str | None
    duration_seconds: float | None
    exit_code: int | None
    error: str | None
    #: The attempt a cancellation cut short while it ran (None: not cancelled while running).
    cancelled_attempt: int | None = None


@attrs.frozen
class SessionRecord:
    session_id: str
    job_key: str | None
    job_path: str | None
    status: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    duration_seconds: float
    is_paused: bool
    budget_usd: float | None
    tasks_completed: int
    tasks_failed: int
    tasks_cancelled: int
    #: Everything spent, every attempt of every task.
    usage: UsageTotals
    #: The share of ``usage`` spent by attempts a crash or stop cut short and a
    #: resumed run ran again (real spend, counted once, shown apart).
    interrupted: UsageTotals = attrs.field(factory=UsageTotals)

    def carried_on(
        self,
        *,
        session_id: str | None = None,
        completed: int | None = None,
        failed: int | None = None,
        cancelled: int | None = None,
    ) -> SessionUpdate:
        """The session as stored, for a broadcaster to carry on from.

        The end counts default to the stored ones; a resumed run passes those of the
        outcomes it keeps (the tasks it runs again are not ended any more).
        """
        usage = self.usage
        budget = self.budget_usd
        return SessionUpdate(
            session_id=self.session_id if session_id is None else session_id,
            started_at=None if self.started_at is None else parse_time(self.started_at),
            duration_seconds=int(self.duration_seconds),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            total_tokens=usage.total_tokens,
            estimated_cost_usd=usage.cost_usd,
            unpriced_tokens=usage.unpriced_tokens,
            tasks_completed=self.tasks_completed if completed is None else completed,
            tasks_failed=self.tasks_failed if failed is None else failed,
            tasks_cancelled=self.tasks_cancelled if cancelled is None else cancelled,
            is_paused=self.is_paused,
            budget_usd=budget,
            budget_remaining_usd=None if budget is None else max(0.0, budget - usage.cost_usd),
        )


_INTERRUPTED = """
    EXISTS (SELECT 1 FROM interrupted_attempts i WHERE i.session_id = usage.session_id
        AND i.task_id = usage.task_id AND i.attempt = usage.attempt)
"""


def _describe(exc: Exception) -> str:
    """An error's text, named by its type unless SQLite's own (whose text says enough)."""
    if isinstance(exc, sqlite3.Error):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@attrs.define(eq=False)
class SessionStore:
    """One SQLite connection, used by one thread at a time."""

    path: str
    _conn: sqlite3.Connection | None
    #: Run first in every write transaction, under the write lock; raises to
    #: refuse the write (``_store_lease``: the session is still this run's).
    write_guard: Callable[[sqlite3.Connection], None] | None = None

    @classmethod
    def open(cls, path: str | Path) -> SessionStore:
        target = str(path)
        try:
            conn = sqlite3.connect(
                target, isolation_level=None, check_same_thread=False, cached_statements=256
            )
            conn.execute("PRAGMA busy_timeout = 5000")
            if target != MEMORY:
                conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a committed batch survives the process being killed.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {target}: {exc}") from exc
        return cls(target, conn)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is closed")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    # -- writing -------------------------------------------------------------
    def begin_session(
        self, session_id: str, *, job_key: str | None = None, job_path: str | None = None
    ) -> None:
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO sessions (session_id, job_key, job_path, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (session_id, job_key, job_path, _now()),
                )
            ]
        )

    def end_session(self, session_id: str, *, status: str) -> None:
        self._write(
            [
                (
                    "UPDATE sessions SET status = ?, ended_at = ? WHERE session_id = ?",
                    (status, _now(), session_id),
                )
            ]
        )

    def write_rows(self, rows: StoreRows) -> None:
        """Write one run of events' rows in one transaction (so a crash keeps a prefix)."""
        self._transaction(functools.partial(write_rows, rows=rows))

    def _write(self, ops: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            for sql, params in ops:
                conn.execute(sql, params)

        self._transaction(apply)

    def _transaction(self, apply: Callable[[sqlite3.Connection], _T]) -> _T:
        """``apply`` in one transaction: all of it is written, or none of it.

        Whatever ``apply`` raises rolls the transaction back and becomes
        :class:`StoreError` (the sqlite3 module raises more than
        ``sqlite3.Error``: ``OverflowError`` for an int past 2**63 - 1,
        ``UnicodeEncodeError`` for text it cannot encode), so a caller never
        sees a bare traceback. A :class:`StoreError` (``write_guard``'s refusal)
        and the ``BaseException``s that are not errors (cancellation,
        KeyboardInterrupt) go on as they are, after the rollback.
        """
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"writing to store {self.path} failed: {exc}") from exc
        try:
            if self.write_guard is not None:
                self.write_guard(conn)
            result = apply(conn)
            conn.execute("COMMIT")
        except StoreError:  # already says what failed (e.g. the guard's LeaseLostError)
            self._roll_back(conn)
            raise
        except Exception as exc:
            rollback = self._roll_back(conn)
            raise StoreError(
                f"writing to store {self.path} failed: {_describe(exc)}{rollback}"
            ) from exc
        except BaseException:
            self._roll_back(conn)
            raise
        return result

    @staticmethod
    def _roll_back(conn: sqlite3.Connection) -> str:
        """Roll back what is left of a failed transaction; '' or why that failed too."""
        if not conn.in_transaction:  # SQLite rolled it back itself (e.g. disk full)
            return ""
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return f" (and rolling back failed: {exc})"
        return ""

    def mark_interrupted(self, session_id: str, attempts: Iterable[tuple[str, int]]) -> None:
        """Record ``(task_id, attempt)``s cut short by a crash or a stop, which a
        resumed run runs again; their tasks are ``interrupted`` until then."""
        at = _now()
        ops: list[tuple[str, tuple[Any, ...]]] = []
        for task_id, attempt in attempts:
            ops.append(
                (
                    "INSERT OR IGNORE INTO interrupted_attempts "
                    "(session_id, task_id, attempt, marked_at) VALUES (?, ?, ?, ?)",
                    (session_id, task_id, attempt, at),
                )
            )
            ops.append(
                (
                    "UPDATE tasks SET state = 'interrupted' WHERE session_id = ? AND task_id = ?",
                    (session_id, task_id),
                )
            )
        self._write(ops)

    def prune_events(self, session_id: str, *, keep: int) -> int:
        """Drop all but the newest ``keep`` history events of a session."""

        def prune(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM events WHERE session_id = ? AND seq <= "
                "(SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?) - ?",
                (session_id, session_id, keep),
            )
            return cursor.rowcount

        return self._transaction(prune)

    # -- reading -------------------------------------------------------------
    def integrity_ok(self) -> bool:
        (result,) = self.conn.execute("PRAGMA integrity_check").fetchone()
        return bool(result == "ok")

    def sessions(self) -> list[SessionRecord]:
        rows = self.conn.execute(
            "SELECT session_id FROM sessions ORDER BY created_at DESC, rowid DESC"
        ).fetchall()
        return [self.session(session_id) for (session_id,) in rows]

    def resolve(self, session_id: str) -> str:
        """A full session id from an id or a unique prefix of one."""
        rows = self.conn.execute(
            "SELECT session_id FROM sessions WHERE session_id = ? OR session_id LIKE ? || '%'",
            (session_id, session_id.replace("%", "").replace("_", "")),
        ).fetchall()
        exact = [row[0] for row in rows if row[0] == session_id]
        if exact:
            return str(exact[0])
        if len(rows) == 1:
            return str(rows[0][0])
        if not rows:
            raise UnknownSessionError(f"no session {session_id!r} in store {self.path}")
        raise UnknownSessionError(f"session prefix {session_id!r} is ambiguous ({len(rows)})")

    def session(self, session_id: str) -> SessionRecord:
        row = self.conn.execute(
            "SELECT session_id, job_key, job_path, status, created_at, started_at, ended_at, "
            "duration_seconds, is_paused, budget_usd, tasks_completed, tasks_failed, "
            "tasks_cancelled FROM sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            raise UnknownSessionError(f"no session {session_id!r} in store {self.path}")
        return SessionRecord(
            session_id=row[0],
            job_key=row[1],
            job_path=row[2],
            status=row[3],
            created_at=row[4],
            started_at=row[5],
            ended_at=row[6],
            duration_seconds=row[7],
            is_paused=bool(row[8]),
            budget_usd=row[9],
            tasks_completed=row[10],
            tasks_failed=row[11],
            tasks_cancelled=row[12],
            usage=self.usage_totals(session_id),
            interrupted=self.usage_totals(session_id, interrupted=True),
        )

    def usage_totals(
        self, session_id: str, task_id: str | None = None, *, interrupted: bool | None = None
    ) -> UsageTotals:
        """Usage of a session (or one task): of every attempt (``interrupted=None``),
        only of interrupted attempts (True), or of all the others (False)."""
        where, params = " WHERE session_id = ?", [session_id]
        if task_id is not None:
            where += " AND task_id = ?"
            params.append(task_id)
        if interrupted is not None:
            where += (" AND " if interrupted else " AND NOT ") + _INTERRUPTED
        [(_, totals)] = sum_usage(self.conn, where, params)
        return totals

    def interrupted_attempts(self, session_id: str) -> list[tuple[str, int]]:
        """``(task_id, attempt)`` of every attempt marked interrupted, in order."""
        rows = self.conn.execute(
            "SELECT task_id, attempt FROM interrupted_attempts WHERE session_id = ? "
            "ORDER BY task_id, attempt",
            (session_id,),
        ).fetchall()
        return [(str(task_id), int(attempt)) for task_id, attempt in rows]

    def usage_by_model(self, session_id: str) -> dict[str, UsageTotals]:
        by_model = sum_usage(self.conn, " WHERE session_id = ?", (session_id,), by="model")
        return {str(model): totals for model, totals in by_model}

    def usage_sources(self, session_id: str) -> dict[str, list[str]]:
        """The output formats each task's usage was read from (``TaskUsage.source``),
        by task id, in the order first seen; tasks with none recorded are left out."""
        rows = self.conn.execute(
            "SELECT task_id, source FROM usage WHERE session_id = ? AND source != '' "
            "GROUP BY task_id, source ORDER BY MIN(seq)",
            (session_id,),
        ).fetchall()
        sources: dict[str, list[str]] = {}
        for task_id, source in rows:
            sources.setdefault(str(task_id), []).append(str(source))
        return sources

    def tasks(self, session_id: str) -> list[StoredTask]:
        rows = self.conn.execute(
            "SELECT task_id, name, state, attempts, started_at, ended_at, duration_seconds, "
            "exit_code, error, cancelled_attempt FROM tasks WHERE session_id = ? ORDER BY rowid",
            (session_id,),
        ).fetchall()
        return [StoredTask(*row) for row in rows]

    def usage_rows(self, session_id: str) -> list[dict[str, Any]]:
        cursor = self.conn.execute(
            "SELECT session_id, task_id, seq, recorded_at, model, provider, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cost_source, "
            f"attempt, records, {_INTERRUPTED} AS interrupted, source "
            "FROM usage WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def controls(self, session_id: str) -> list[dict[str, Any]]:
        cursor = self.conn.execute(
            "SELECT seq, at, kind, actor, reason, budget_usd, concurrency FROM controls "
            "WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def history(self, session_id: str, *, since: int = 0) -> list[str]:
        rows = self.conn.execute(
            "SELECT wire FROM events WHERE session_id = ? AND seq > ? ORDER BY seq",
            (session_id, since),
        ).fetchall()
        return [wire for (wire,) in rows]

    def last_seq(self, session_id: str) -> int:
        (seq,) = self.conn.execute(
            "SELECT MAX(m) FROM (SELECT COALESCE(MAX(seq), 0) AS m FROM events WHERE session_id = ?"
            " UNION ALL SELECT COALESCE(MAX(seq), 0) FROM usage WHERE session_id = ?)",
            (session_id, session_id),
        ).fetchone()
        return int(seq or 0)

    def find_resumable(self, job_key: str) -> str | None:
        """The newest unfinished session of the same job, if any."""
        row = self.conn.execute(
            "SELECT session_id FROM sessions WHERE job_key = ? "
            "AND status IN ('running', 'interrupted') "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (job_key,),
        ).fetchone()
        return None if row is None else str(row[0])
