"""Which tasks the executor knows: live records, and a bounded tail of finished ones.

A live task (queued, running, retrying) keeps its full :class:`TaskRecord`.
When it ends, only its final values are kept (a tuple; the :class:`TaskInfo`
is built from it when asked), and only for the newest
``keep_finished`` finished tasks: a long run must not keep every finished
task's record, function, arguments and result. What is forgotten is counted
(``finished_evicted``). Every id ever submitted stays reserved, so a forgotten
task's id is still refused as a duplicate and still reads as "ended" rather
than "unknown": live and kept tasks' ids are the keys of their dicts, forgotten
ones are packed in :class:`RetiredIds` (``len(id) + 1`` bytes each, a fraction
of a set entry: the one thing that grows with every task).
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
from collections import deque
from collections.abc import Collection, Iterator
from typing import Any, Final, TypeVar

import attrs

from ._exceptions import InvalidArgumentError, TaskNotRetriableError, UnknownTaskError
from ._record import FinishedRow, TaskFunction, TaskRecord
from ._retired import RetiredIds
from ._states import RETRIABLE_STATES, TaskInfo

_Item = TypeVar("_Item")
# A kept failed or cancelled task: its record, and the function, arguments and
# context its ``retire`` let go of.
_Retriable = tuple[TaskRecord, TaskFunction, tuple[Any, ...], contextvars.Context | None]

#: Finished tasks kept for ``tasks()`` and ``/api/tasks`` (memory: bench/README.md, section 4).
DEFAULT_KEEP_FINISHED: Final = 5_000


def check_keep_finished(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"keep_finished must be an int >= 0, got {value!r}")
    return value


@attrs.frozen
class TaskPage:
    """One page of ``Executor.task_page``: tasks in submission order, and where the next starts."""

    tasks: tuple[TaskInfo, ...]
    #: ``after`` for the next page (the order of this page's last task); None: no more.
    next_after: int | None


@attrs.define(eq=False)
class TaskRegistry:
    """Live task records in submission order, plus the newest finished tasks' infos."""

    keep_finished: int = DEFAULT_KEEP_FINISHED
    #: Finished tasks forgotten to respect ``keep_finished``.
    finished_evicted: int = 0
    live: dict[str, TaskRecord] = attrs.field(factory=dict)
    # Final rows (submission order first), in the order the tasks finished, and their ids
    # oldest first (a dict's first key is found by scanning the slots its
    # deletions left: bench/HISTORY.md, "Forgetting the oldest through a deque").
    _finished: dict[str, FinishedRow] = attrs.field(factory=dict)
    _finished_order: deque[str] = attrs.field(factory=deque)
    # Ids of the finished tasks no longer kept.
    _retired: RetiredIds = attrs.field(factory=RetiredIds)
    # Kept failed and cancelled tasks' records, with what a retry runs again
    # (function, arguments, context), forgotten with their rows.
    _retriable: dict[str, _Retriable] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        # Not an attrs converter, which would slow every attribute assignment.
        check_keep_finished(self.keep_finished)

    @property
    def ids(self) -> Collection[str]:
        """Every id ever submitted: live, kept and forgotten tasks'."""
        return self

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.live or task_id in self._finished or task_id in self._retired

    def __len__(self) -> int:
        return len(self.live) + len(self._finished) + len(self._retired)

    def __iter__(self) -> Iterator[str]:
        return itertools.chain(tuple(self.live), tuple(self._finished), self._retired)

    def finish(self, record: TaskRecord) -> None:
        """Keep ``record``'s final values (bounded), and let go of the record itself."""
        task_id = record.task_id
        del self.live[task_id]
        fn = record.fn
        if self.keep_finished == 0:
            record.retire()
            self._forget(task_id)
            return
        if record.state in RETRIABLE_STATES and fn is not None:
            self._retriable[task_id] = (record, fn, record.args, record.context)
        self._finished[task_id] = record.retire()
        order = self._finished_order
        order.append(task_id)
        if len(order) > self.keep_finished:
            oldest = order.popleft()
            del self._finished[oldest]
            if self._retriable:
                self._retriable.pop(oldest, None)
            self._forget(oldest)

    def reopen(self, task_id: str) -> TaskRecord:
        """A kept failed or cancelled task, live and queued again (``Executor.retry``).

        ``live`` stays in submission order (``page`` relies on it): the record
        goes back to its place, at a cost in the live tasks (a retry is an
        operator's act, not a hot path).
        """
        record = self.live.get(task_id)
        if record is not None:
            raise TaskNotRetriableError(
                f"task {task_id!r} is {record.state}: only a failed, timed-out or "
                "cancelled task can be retried"
            )
        row = self._finished.get(task_id)
        if row is None:
            self.info(task_id)  # raises UnknownTaskError saying which case
        assert row is not None
        kept = self._retriable.pop(task_id, None)
        if kept is None:
            raise TaskNotRetriableError(
                f"task {task_id!r} is {row.state}: only a failed, timed-out or "
                "cancelled task can be retried"
            )
        record, fn, args, context = kept
        del self._finished[task_id]
        self._finished_order.remove(task_id)
        record.reopen(fn, args, context)
        live = self.live
        live[task_id] = record
        if len(live) > 1:
            ordered = sorted(live.values(), key=_record_order)
            live.clear()
            live.update((each.task_id, each) for each in ordered)
        return record

    def _forget(self, task_id: str) -> None:
        self._retired.add(task_id)
        self.finished_evicted += 1

    @property
    def retired_ids(self) -> RetiredIds:
        return self._retired

    @property
    def finished_kept(self) -> int:
        return len(self._finished)

    def info(self, task_id: str) -> TaskInfo:
        record = self.live.get(task_id)
        if record is not None:
            return record.info()
        kept = self._finished.get(task_id)
        if kept is not None:
            return kept.info()
        if task_id in self._retired:
            raise UnknownTaskError(
                f"task {task_id!r} has ended and is no longer kept "
                f"(only the newest {self.keep_finished} finished tasks are)"
            )
        raise UnknownTaskError(f"no task with id {task_id!r}")

    def infos(self) -> list[TaskInfo]:
        """Every live task and every kept finished one, in submission order."""
        rows = [(record.order, record.info()) for record in self.live.values()]
        if self._finished:
            rows.extend((row.order, row.info()) for row in self._finished.values())
            rows.sort(key=_order)
        return [info for _, info in rows]

    def page(self, after: int | None, limit: int, states: Collection[str] | None) -> TaskPage:
        """Up to ``limit`` of :meth:`infos`' tasks, those submitted after order ``after``
        and (if given) in ``states``.

        It costs a scan of the orders and ``limit`` infos, where :meth:`infos`
        builds one per task (bench/README.md, section 6).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError(f"limit must be an int >= 1, got {limit!r}")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise InvalidArgumentError(f"after must be an int or None, got {after!r}")
        start = -1 if after is None else after
        # ``live`` is in submission order (records enter it when submitted).
        live: Iterator[tuple[int, TaskRecord | FinishedRow]] = (
            (record.order, record)
            for record in self.live.values()
            if record.order > start and (states is None or record.state in states)
        )
        finished: list[tuple[int, TaskRecord | FinishedRow]] = sorted(
            (
                (row.order, row)
                for row in self._finished.values()
                if row.order > start and (states is None or row.state in states)
            ),
            key=_order,
        )
        merged = heapq.merge(live, finished, key=_order)
        picked = list(itertools.islice(merged, limit + 1))
        more = len(picked) > limit
        del picked[limit:]
        infos = tuple(item.info() for _, item in picked)
        return TaskPage(infos, picked[-1][0] if more else None)

    def live_or_ended(self, task_id: str) -> TaskRecord | None:
        """The record of a task not ended; None if it has ended (kept or not)."""
        record = self.live.get(task_id)
        if record is None and task_id not in self:
            raise UnknownTaskError(f"no task with id {task_id!r}")
        return record


def _record_order(record: TaskRecord) -> int:
    return record.order


def _order(row: tuple[int, _Item]) -> int:
    return row[0]
