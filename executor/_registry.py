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

import heapq
import itertools
from collections import deque
from collections.abc import Collection, Iterator
from typing import Final, TypeVar

import attrs

from ._exceptions import InvalidArgumentError, UnknownTaskError
from ._record import FinishedRow, TaskRecord
from ._retired import RetiredIds
from ._states import TaskInfo

_Item = TypeVar("_Item")

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
        row = record.retire()
        if self.keep_finished == 0:
            self._forget(task_id)
            return
        self._finished[task_id] = row
        order = self._finished_order
        order.append(task_id)
        if len(order) > self.keep_finished:
            oldest = order.popleft()
            del self._finished[oldest]
            self._forget(oldest)

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


def _order(row: tuple[int, _Item]) -> int:
    return row[0]
