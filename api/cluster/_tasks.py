"""The task table of a serve node: ``/api/tasks`` folded from the session's events.

A serve node runs no executor, so it cannot ask one for its tasks; it keeps
what the executor's registry keeps (``executor/_registry.py``), built from the
events instead of from the records: each task's latest state, attempts, times,
usage, error and exit code, as :class:`executor.TaskInfo` rows and
:class:`executor.TaskPage` pages, so the server answers exactly as it does on
one host.

A task's order (the ``after`` cursor of a page) is the seq of the event that
first announced it, so every serve node of the session pages alike. Live
tasks are all kept; of the finished ones the newest ``keep_finished`` are
(older ones are counted in ``finished_evicted`` and their ids remembered, so
``has_task`` still knows them). The rules follow the executor's: an end is
final except for an operator's retry (a ``task_queued`` after a failed or
cancelled end), and an event about an unknown task (its announcement trimmed
from the stream before this node read it) starts a row of its own.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from typing import Any, Final

import attrs

from events import (
    END_STATES,
    Published,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskState,
    TaskUsage,
)
from executor import DEFAULT_KEEP_FINISHED, RETRIABLE_STATES, TaskInfo, TaskPage

from ._exceptions import ClusterError


@attrs.define(eq=False, slots=True)
class TaskRow:
    order: int
    task_id: str
    name: str = ""
    priority: int = 0
    state: TaskState = "queued"
    attempts: int = 0
    #: The newest attempt a ``task_queued`` announced (it may never have started).
    announced: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_tokens: int = 0
    error: str | None = None
    exit_code: int | None = None

    @property
    def last_attempt(self) -> int:
        """The newest attempt started or announced: a retry numbers on past it."""
        return max(self.attempts, self.announced)

    def info(self) -> TaskInfo:
        return TaskInfo(
            task_id=self.task_id,
            name=self.name,
            state=self.state,
            attempts=self.attempts,
            started_at=self.started_at,
            ended_at=self.ended_at,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            estimated_cost_usd=self.cost_usd,
            error=self.error,
            exit_code=self.exit_code,
            priority=self.priority,
            unpriced_tokens=self.unpriced_tokens,
        )


@attrs.define(eq=False)
class TaskTable:
    """The session's tasks as its events describe them; a publisher listener (:meth:`apply`)."""

    keep_finished: int = DEFAULT_KEEP_FINISHED
    #: Finished tasks no longer listed (``keep_finished``).
    finished_evicted: int = 0
    # Every listed task, in order of first announcement (seq order).
    _rows: dict[str, TaskRow] = attrs.field(factory=dict)
    _finished_order: deque[str] = attrs.field(factory=deque)
    _forgotten: set[str] = attrs.field(factory=set)

    def __attrs_post_init__(self) -> None:
        value = self.keep_finished
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ClusterError(f"keep_finished must be an int >= 0, got {value!r}")

    # -- folding ---------------------------------------------------------------
    def apply(self, item: Published) -> None:
        """Fold one published event in (events about no task are ignored)."""
        handler = _HANDLERS.get(type(item.event))
        if handler is not None:
            handler(self, item, item.event)

    def _row(self, item: Published, name: str = "") -> TaskRow | None:
        """The task's row; a new one for a task not seen before; None for a forgotten one."""
        task_id = item.event.task_id
        row = self._rows.get(task_id)
        if row is None:
            if task_id in self._forgotten:
                return None
            row = self._rows[task_id] = TaskRow(item.seq, task_id, name)
        return row

    def _queued(self, item: Published, event: TaskQueued) -> None:
        row = self._row(item, event.name)
        if row is None:
            return
        if row.state in END_STATES:
            if row.state not in RETRIABLE_STATES or event.attempt <= row.last_attempt:
                return  # a late duplicate: the end stands
            self._finished_order.remove(row.task_id)  # an operator's retry: rare
            row.ended_at = row.error = row.exit_code = None
        row.name = event.name or row.name
        row.priority = event.priority
        row.announced = max(row.announced, event.attempt)
        row.state = "queued"

    def _started(self, item: Published, event: TaskStarted) -> None:
        row = self._row(item, event.name)
        if row is None or row.state in END_STATES:
            return
        row.state = "running"
        row.attempts = max(row.attempts, event.attempt)
        if row.started_at is None:
            row.started_at = item.time

    def _retrying(self, item: Published, event: TaskRetrying) -> None:
        row = self._row(item)
        if row is not None and row.state not in END_STATES:
            row.state = "retrying"
            row.attempts = max(row.attempts, event.attempt)

    def _usage(self, item: Published, event: TaskUsage) -> None:
        row = self._row(item)
        if row is None:
            return
        row.input_tokens += event.input_tokens
        row.output_tokens += event.output_tokens
        row.cache_read_tokens += event.cache_read_tokens
        row.cache_write_tokens += event.cache_write_tokens
        if event.cost_usd is None:
            row.unpriced_tokens += event.total_tokens
        else:
            row.cost_usd += event.cost_usd

    def _ended(self, item: Published, event: Any) -> None:
        row = self._row(item)
        if row is None or row.state in END_STATES:
            return
        if isinstance(event, TaskCompleted):
            row.state, row.exit_code = "completed", event.exit_code
        elif isinstance(event, TaskFailed):
            row.state, row.error, row.exit_code = "failed", event.error, event.exit_code
        else:
            row.state, row.error = "cancelled", event.reason
        if isinstance(event, TaskCompleted | TaskFailed):
            row.attempts = max(row.attempts, event.attempt)
        row.ended_at = item.time
        self._finish(row.task_id)

    def _finish(self, task_id: str) -> None:
        order = self._finished_order
        order.append(task_id)
        while len(order) > self.keep_finished:
            oldest = order.popleft()
            del self._rows[oldest]
            self._forgotten.add(oldest)
            self.finished_evicted += 1

    def seed(self, rows: Iterable[TaskRow]) -> None:
        """Start from rows read elsewhere (a store), in order, before any event."""
        for row in rows:
            self._rows[row.task_id] = row
            if row.state in END_STATES:
                self._finish(row.task_id)

    # -- reading (the server's ExecutorControls listing half) -----------------------
    def has_task(self, task_id: str) -> bool:
        return task_id in self._rows or task_id in self._forgotten

    def row(self, task_id: str) -> TaskRow | None:
        """The listed task's row (read it, do not change it); None if not listed."""
        return self._rows.get(task_id)

    def tasks(self) -> list[TaskInfo]:
        """Every listed task, in order of announcement."""
        return [row.info() for row in self._rows.values()]

    def task_page(
        self, *, after: int | None = None, limit: int, states: Collection[str] | None = None
    ) -> TaskPage:
        """Up to ``limit`` tasks announced after order ``after`` (and in ``states``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ClusterError(f"limit must be an int >= 1, got {limit!r}")
        start = -1 if after is None else after
        rows: Iterator[TaskRow] = (
            row
            for row in self._rows.values()
            if row.order > start and (states is None or row.state in states)
        )
        picked = list(itertools.islice(rows, limit + 1))
        more = len(picked) > limit
        del picked[limit:]
        return TaskPage(tuple(row.info() for row in picked), picked[-1].order if more else None)

    def __len__(self) -> int:
        return len(self._rows)


_HANDLERS: Final[dict[type, Any]] = {
    TaskQueued: TaskTable._queued,
    TaskStarted: TaskTable._started,
    TaskRetrying: TaskTable._retrying,
    TaskUsage: TaskTable._usage,
    TaskCompleted: TaskTable._ended,
    TaskFailed: TaskTable._ended,
    TaskCancelled: TaskTable._ended,
}
