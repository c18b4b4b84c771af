"""Turns a run of published events into the rows one store transaction writes.

This runs in the store's worker thread, not on the trio thread: the recorder
only queues each ``Published`` as it is published. A run of events becomes one
transaction, so what a crash leaves behind is always a prefix of the event
stream. Within a run, a task's row is written once with the state its events
leave it in (queued, started and completed in one run: one insert, not an
insert and three updates); history rows reuse the wire text the publisher
already encoded.

The worker's Python holds the GIL that the trio thread needs, so this file
does as little per event as it can: times are cut out of the wire text (not
formatted again), a task row is a few slots, history is one flat list of
``seq, wire`` pairs, and the session id is bound once per statement.

Rows hold what events hold, unchecked: what SQLite cannot take is dealt with
only when a write fails for it (``escape_text``, ``describe_too_large``), so
every other write costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from events import (
    BudgetChanged,
    BudgetExhausted,
    BudgetWarning,
    ConcurrencyChanged,
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

#: The largest integer a SQLite INTEGER holds.
MAX_STORED_INT = 2**63 - 1
#: Usage parameters (see ``_usage``) that are counts, by position.
_USAGE_INTS: tuple[tuple[int, str], ...] = (
    (1, "seq"),
    (4, "input_tokens"),
    (5, "output_tokens"),
    (6, "cache_read_tokens"),
    (7, "cache_write_tokens"),
    (9, "records"),
)

#: ``(ended_at, duration_seconds, exit_code, cancelled_attempt)`` after a start.
_NO_FINISH = (None, None, None, None)

# Statement keys: which columns a row sets, and which of those are NULL. Binding
# None (or a bool) costs the sqlite3 module an adaptation lookup, ten times an int
# or a str, so NULLs are written into the statement and never bound.
TaskKey = tuple[bool, ...]
UsageKey = tuple[bool, ...]


#: ``format_time``'s text is always this long (years have four digits).
_TIME_LENGTH = len("2026-11-22T00:00:00.000000Z")


def wire_time(item: Published) -> str:
    """The event's time as its wire text has it (``format_time(item.time)``).

    Cut out of the wire, cheaper than formatting it again
    (bench/HISTORY.md#leaner-row-building-and-power-of-two-statements-kept). The first
    ``,"time":"`` in a wire text is the frame's: inside a JSON string every
    quote is escaped, and no event's data has a ``time`` key.
    """
    wire = item.wire
    start = wire.find(',"time":"') + 9
    if start < 9:
        return format_time(item.time)
    return wire[start : start + _TIME_LENGTH]


class TaskTableRow:
    """A task's row as a run of its events leaves it; groups left unset keep the stored value.

    ``start`` is (attempts, started_at); ``finish`` is (ended_at, duration,
    exit code, the attempt a cancellation cut short); ``error`` the error text.
    A start clears the previous attempt's finish and error.
    """

    __slots__ = ("error", "finish", "inserts", "name", "start", "state", "task_id")

    def __init__(self, task_id: str, name: str = "", *, inserts: bool = False) -> None:
        self.task_id = task_id
        self.name = name
        self.state = "queued"
        self.start: tuple[int, str] | None = None
        self.finish: tuple[Any, ...] | None = None
        self.error: Any = _UNCHANGED
        #: The run holds the task's ``task_queued``, so the row may be new; these
        #: go in event order, so rowids keep the order tasks were queued in.
        self.inserts = inserts

    def bound(self) -> tuple[TaskKey, tuple[Any, ...]]:
        """The statement key (see ``_writes``) and the non-NULL parameters."""
        params: list[Any] = [self.task_id, self.name, self.state]
        start, finish, error = self.start, self.finish, self.error
        if start is not None:
            params += start
        if finish is None or finish is _NO_FINISH:
            ended = duration = code = cut = None
        else:
            ended, duration, code, cut = finish
            for value in finish:
                if value is not None:
                    params.append(value)
        error_null = error is None or error is _UNCHANGED
        if not error_null:
            params.append(error)
        key = (
            start is not None,
            finish is not None,
            error is not _UNCHANGED,
            ended is None,
            duration is None,
            code is None,
            cut is None,
            error_null,
        )
        return key, tuple(params)


@attrs.define
class StoreRows:
    """Everything one transaction writes, grouped by statement; the session id is bound once."""

    session_id: str
    #: ``seq, wire, seq, wire, ...``: the publisher's own encoding, stored as is.
    history: list[Any] = attrs.field(factory=list)
    tasks: dict[str, TaskTableRow] = attrs.field(factory=dict)
    #: (statement key, parameters) in event order; see ``_writes``.
    usage: list[tuple[UsageKey, tuple[Any, ...]]] = attrs.field(factory=list)
    #: (seq, at, kind, actor, reason, budget_usd, concurrency) of each control event.
    controls: list[tuple[Any, ...]] = attrs.field(factory=list)
    #: The session's last pause state / budget / snapshot in this run (``_UNCHANGED`` if none).
    paused: Any = _UNCHANGED
    budget: Any = _UNCHANGED
    snapshot: tuple[Any, ...] | None = None

    @property
    def events(self) -> int:
        """How many events have a history row in this run."""
        return len(self.history) // 2

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

    def rows(self, items: Iterable[Published]) -> StoreRows:
        rows = StoreRows(self.session_id)
        add = rows.history.append
        handlers = _HANDLERS
        skip_output = not self.record_output
        for item in items:
            event: Any = item.event
            kind = type(event)
            if kind is SessionUpdate:
                rows.snapshot = _snapshot(event, rows.snapshot)
                continue
            if kind is TaskOutput and skip_output:
                continue
            add(item.seq)
            add(item.wire)
            handler = handlers.get(kind)
            if handler is not None:
                handler(self, rows, item, event)
        return rows


def _new_task(rows: StoreRows, task_id: str) -> TaskTableRow:
    row = rows.tasks[task_id] = TaskTableRow(task_id)
    return row


def _queued(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskQueued = e
    row = rows.tasks.get(event.task_id)
    if row is None:  # the usual case: a new task, its row starts queued
        rows.tasks[event.task_id] = TaskTableRow(event.task_id, event.name, inserts=True)
        return
    row.state = "queued"
    if event.name:
        row.name = event.name


def _started(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskStarted = e
    row = rows.tasks.get(event.task_id) or _new_task(rows, event.task_id)
    builder._attempts[event.task_id] = event.attempt
    if event.name:
        row.name = event.name
    row.state = "running"
    row.start = (event.attempt, wire_time(item))
    row.finish = _NO_FINISH
    row.error = None


def _completed(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskCompleted = e
    builder._attempts.pop(event.task_id, None)
    row = rows.tasks.get(event.task_id) or _new_task(rows, event.task_id)
    row.state = "completed"
    row.finish = (wire_time(item), event.duration_seconds, event.exit_code, None)
    row.error = None


def _failed(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskFailed = e
    builder._attempts.pop(event.task_id, None)
    row = rows.tasks.get(event.task_id) or _new_task(rows, event.task_id)
    row.state = "failed"
    row.finish = (wire_time(item), event.duration_seconds, event.exit_code, None)
    row.error = event.error


def _cancelled(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskCancelled = e
    attempt = builder._attempts.pop(event.task_id, None)
    row = rows.tasks.get(event.task_id) or _new_task(rows, event.task_id)
    row.state = "cancelled"
    row.finish = (wire_time(item), None, None, attempt if event.was_running else None)
    row.error = event.reason


def _retrying(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskRetrying = e
    builder._attempts.pop(event.task_id, None)
    row = rows.tasks.get(event.task_id) or _new_task(rows, event.task_id)
    row.state, row.error = "retrying", event.error


def _usage(builder: RowBuilder, rows: StoreRows, item: Published, e: Any) -> None:
    event: TaskUsage = e
    provider, cost, attempt = event.provider, event.cost_usd, builder._attempts.get(event.task_id)
    params = [
        event.task_id,
        item.seq,
        wire_time(item),
        event.model,
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.cost_source,
        event.records,
    ]
    if provider is not None:
        params.append(provider)
    if cost is not None:
        params.append(cost)
    if attempt is not None:
        params.append(attempt)
    source = event.source
    if source:
        params.append(source)
    key = (provider is None, cost is None, attempt is None, not source)
    rows.usage.append((key, tuple(params)))


def _control(builder: RowBuilder, rows: StoreRows, item: Published, event: Any) -> None:
    at = wire_time(item)
    match event:
        case ExecutorPaused() | ExecutorResumed():
            paused = isinstance(event, ExecutorPaused)
            kind = "pause" if paused else "resume"
            rows.controls.append((item.seq, at, kind, event.by, event.reason, None, None))
            rows.paused = int(paused)
        case BudgetChanged():
            budget = event.budget_usd
            rows.controls.append((item.seq, at, "budget", event.by, event.reason, budget, None))
            rows.budget = budget
        case BudgetWarning() | BudgetExhausted():
            rows.controls.append(
                (item.seq, at, event.event_name, "budget", "", event.budget_usd, None)
            )
        case ConcurrencyChanged():
            rows.controls.append(
                (item.seq, at, "concurrency", event.by, event.reason, None, event.concurrency)
            )


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
    ConcurrencyChanged: _control,
}


def storable(text: str) -> str:
    """``text`` as SQLite's UTF-8 can hold it: lone surrogates as their escapes."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def _storable_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(storable(value) if isinstance(value, str) else value for value in values)


def escape_text(rows: StoreRows) -> StoreRows:
    """``rows`` with every text as SQLite can store it (UTF-8 has no lone surrogates,
    which a task's JSON output can carry as ``"\\ud800"``): they become their escapes.
    The history keeps each event exactly (the wire text escapes them already)."""
    for row in rows.tasks.values():
        row.task_id, row.name = storable(row.task_id), storable(row.name)
        if isinstance(row.error, str):
            row.error = storable(row.error)
    rows.usage = [(key, _storable_values(params)) for key, params in rows.usage]
    rows.controls = [_storable_values(values) for values in rows.controls]
    rows.history = [storable(value) if isinstance(value, str) else value for value in rows.history]
    return rows


def describe_too_large(rows: StoreRows) -> str | None:
    """What in ``rows`` is past SQLite's largest integer, named; None if nothing is."""
    for seq in rows.history[::2]:
        if seq > MAX_STORED_INT:
            return f"event seq {seq} is more than the store holds ({MAX_STORED_INT})"
    for _, params in rows.usage:
        for index, name in _USAGE_INTS:
            if params[index] > MAX_STORED_INT:
                return (
                    f"the usage of task {params[0]!r}: {name} = {params[index]} is more "
                    f"than the store holds ({MAX_STORED_INT})"
                )
    return None
