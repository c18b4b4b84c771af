"""Turns a run of published events into the rows one store transaction writes.

This runs in the store's worker thread, not on the trio thread: the recorder
only queues each ``Published`` as it is published. A run of events becomes one
transaction, so what a crash leaves behind is always a prefix of the event
stream. Within a run, a task's row is written once with the state its events
leave it in (queued, started and completed in one run: one insert, not an
insert and three updates); history rows reuse the wire text the publisher
already encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from events import (
    BudgetChanged,
    BudgetExhausted,
    BudgetWarning,
    Event,
    ExecutorPaused,
    ExecutorResumed,
    Published,
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

_UNCHANGED: Any = object()


# Statement keys: which columns a row sets, and which of those are NULL. Binding
# None (or a bool) costs the sqlite3 module an adaptation lookup, ten times an int
# or a str, so NULLs are written into the statement and never bound.
TaskKey = tuple[bool, ...]
UsageKey = tuple[bool, bool, bool]


@attrs.define(slots=True)
class TaskRow:
    """A task's row as a run of its events leaves it; groups left unset keep the stored value.

    ``start`` covers attempts and started_at; ``finish`` ended_at, duration,
    exit code and the attempt a cancellation cut short; ``error`` the error.
    A start clears the previous attempt's finish and error.
    """

    task_id: str
    name: str = ""
    state: str = "queued"
    attempts: int = 0
    started_at: str = ""
    ended_at: str | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None
    cancelled_attempt: int | None = None
    error: str | None = None
    start_set: bool = False
    finish_set: bool = False
    error_set: bool = False
    #: The run holds the task's ``task_queued``, so the row may be new (an upsert);
    #: otherwise an earlier run wrote it and an update will do.
    inserts: bool = False

    def bound(self, session_id: str) -> tuple[TaskKey, tuple[Any, ...]]:
        """The statement key (see ``_store_writes``) and the non-NULL parameters."""
        params: list[Any] = [session_id, self.task_id, self.name, self.state]
        if self.start_set:
            params += (self.attempts, self.started_at)
        ended, duration, code, cut = (
            self.ended_at,
            self.duration_seconds,
            self.exit_code,
            self.cancelled_attempt,
        )
        if self.finish_set:
            for value in (ended, duration, code, cut):
                if value is not None:
                    params.append(value)
        error = self.error
        if self.error_set and error is not None:
            params.append(error)
        key = (
            self.start_set,
            self.finish_set,
            self.error_set,
            ended is None,
            duration is None,
            code is None,
            cut is None,
            error is None,
        )
        return key, tuple(params)

    def start(self, attempt: int, at: str) -> None:
        self.state, self.attempts, self.started_at = "running", attempt, at
        self.ended_at = self.duration_seconds = self.exit_code = self.cancelled_attempt = None
        self.error = None
        self.start_set = self.finish_set = self.error_set = True

    def finish(
        self,
        state: str,
        at: str,
        *,
        duration: float | None,
        exit_code: int | None,
        error: str | None,
        cancelled_attempt: int | None = None,
    ) -> None:
        self.state = state
        self.ended_at, self.duration_seconds, self.exit_code = at, duration, exit_code
        self.cancelled_attempt = cancelled_attempt
        self.error = error
        self.finish_set = self.error_set = True


@attrs.define
class StoreRows:
    """Everything one transaction writes, grouped by statement."""

    session_id: str
    #: (session id, seq, wire): the publisher's own encoding, stored as is.
    history: list[tuple[str, int, str]] = attrs.field(factory=list)
    tasks: dict[str, TaskRow] = attrs.field(factory=dict)
    #: (statement key, parameters) in event order; see ``_store_writes``.
    usage: list[tuple[UsageKey, tuple[Any, ...]]] = attrs.field(factory=list)
    controls: list[tuple[Any, ...]] = attrs.field(factory=list)
    #: The session's last pause state / budget / snapshot in this run (``_UNCHANGED`` if none).
    paused: Any = _UNCHANGED
    budget: Any = _UNCHANGED
    snapshot: tuple[Any, ...] | None = None

    @property
    def session_updates(self) -> list[tuple[str, tuple[Any, ...]]]:
        sid = self.session_id
        updates: list[tuple[str, tuple[Any, ...]]] = []
        if self.paused is not _UNCHANGED:
            updates.append(("paused", (self.paused, sid)))
        if self.budget is not _UNCHANGED:
            updates.append(("budget", (self.budget, sid)))
        if self.snapshot is not None:
            updates.append(("snapshot", (*self.snapshot, sid)))
        return updates


@attrs.define
class TimeText:
    """``format_time`` for UTC times, reusing the text up to the second (the common case)."""

    whole: datetime | None = None
    prefix: str = ""

    def __call__(self, moment: datetime) -> str:
        whole = self.whole
        if (
            whole is None
            or moment.second != whole.second
            or moment.minute != whole.minute
            or moment.hour != whole.hour
            or moment.day != whole.day
            or moment.month != whole.month
            or moment.year != whole.year
            or moment.tzinfo is not UTC
        ):
            if moment.tzinfo is not UTC:
                return format_time(moment)
            self.whole = whole = moment
            self.prefix = moment.replace(microsecond=0, tzinfo=None).isoformat()
        return f"{self.prefix}.{moment.microsecond:06d}Z"


_Handler = Callable[["RowBuilder", StoreRows, Published, Any], None]


@attrs.define(eq=False)
class RowBuilder:
    """Builds :class:`StoreRows` from consecutive runs of one session's events.

    It remembers each running task's attempt across runs, so every usage row
    says which attempt spent it (usage is published between the attempt's
    ``task_started`` and its end). Used by one thread at a time.
    """

    session_id: str
    record_output: bool = True
    _attempts: dict[str, int] = attrs.field(factory=dict)
    _time: TimeText = attrs.field(factory=TimeText)

    def rows(self, items: Iterable[Published]) -> StoreRows:
        rows = StoreRows(self.session_id)
        history = rows.history
        sid = self.session_id
        handlers = _HANDLERS
        for item in items:
            event = item.event
            if type(event) is SessionUpdate:
                rows.snapshot = _snapshot(event, rows.snapshot)
                continue
            if type(event) is TaskOutput and not self.record_output:
                continue
            history.append((sid, item.seq, item.wire))
            handler = handlers.get(type(event))
            if handler is not None:
                handler(self, rows, item, event)
        return rows

    def _task(self, rows: StoreRows, event: Event) -> TaskRow:
        row = rows.tasks.get(event.task_id)
        if row is None:
            row = rows.tasks[event.task_id] = TaskRow(event.task_id)
        return row


def _queued(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskQueued = e
    row = rows.tasks.get(event.task_id)
    if row is None:
        row = rows.tasks[event.task_id] = TaskRow(event.task_id, inserts=True)
    row.state = "queued"
    if event.name:
        row.name = event.name


def _started(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskStarted = e
    at = builder._time(item.time)
    row = builder._task(rows, event)
    builder._attempts[event.task_id] = event.attempt
    if event.name:
        row.name = event.name
    row.start(event.attempt, at)


def _completed(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskCompleted = e
    at = builder._time(item.time)
    builder._attempts.pop(event.task_id, None)
    builder._task(rows, event).finish(
        "completed", at, duration=event.duration_seconds, exit_code=event.exit_code, error=None
    )


def _failed(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskFailed = e
    at = builder._time(item.time)
    builder._attempts.pop(event.task_id, None)
    builder._task(rows, event).finish(
        "failed", at, duration=event.duration_seconds, exit_code=event.exit_code, error=event.error
    )


def _cancelled(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskCancelled = e
    at = builder._time(item.time)
    attempt = builder._attempts.pop(event.task_id, None)
    builder._task(rows, event).finish(
        "cancelled",
        at,
        duration=None,
        exit_code=None,
        error=event.reason,
        cancelled_attempt=attempt if event.was_running else None,
    )


def _retrying(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskRetrying = e
    builder._attempts.pop(event.task_id, None)
    row = builder._task(rows, event)
    row.state, row.error, row.error_set = "retrying", event.error, True


def _usage(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskUsage = e
    at = builder._time(item.time)
    provider, cost, attempt = event.provider, event.cost_usd, builder._attempts.get(event.task_id)
    params = (
        builder.session_id,
        event.task_id,
        item.seq,
        at,
        event.model,
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.cost_source,
        event.records,
        *(value for value in (provider, cost, attempt) if value is not None),
    )
    rows.usage.append(((provider is None, cost is None, attempt is None), params))


def _control(builder: RowBuilder, rows: StoreRows, item: Published, event: Any) -> None:
    sid = builder.session_id
    at = builder._time(item.time)
    match event:
        case ExecutorPaused() | ExecutorResumed():
            paused = isinstance(event, ExecutorPaused)
            kind = "pause" if paused else "resume"
            rows.controls.append((sid, item.seq, at, kind, event.by, event.reason, None))
            rows.paused = int(paused)
        case BudgetChanged():
            budget = event.budget_usd
            rows.controls.append((sid, item.seq, at, "budget", event.by, event.reason, budget))
            rows.budget = budget
        case BudgetWarning() | BudgetExhausted():
            control = (sid, item.seq, at, event.event_name, "budget", "", event.budget_usd)
            rows.controls.append(control)


def _snapshot(update: SessionUpdate, earlier: tuple[Any, ...] | None) -> tuple[Any, ...]:
    # A snapshot without a start time keeps the one stored (COALESCE), so the
    # last snapshot of a run keeps an earlier one's too.
    started: str | None = None if earlier is None else earlier[0]
    if update.started_at is not None:
        started = format_time(update.started_at)
    counts = (update.tasks_completed, update.tasks_failed, update.tasks_cancelled)
    return (started, update.duration_seconds, *counts)


_HANDLERS: dict[type[Event], _Handler] = {
    TaskQueued: _queued,
    TaskStarted: _started,
    TaskCompleted: _completed,
    TaskFailed: _failed,
    TaskCancelled: _cancelled,
    TaskRetrying: _retrying,
    TaskUsage: _usage,
    ExecutorPaused: _control,
    ExecutorResumed: _control,
    BudgetChanged: _control,
    BudgetWarning: _control,
    BudgetExhausted: _control,
}
