"""The per-task state machine of the session aggregate: ``SessionAggregate``'s task half.

Every task's latest state is kept in a dict, and the per-state counts are
moved with each transition, so ``tasks_running`` is always the number of tasks
whose latest state is running: it cannot go negative, and duplicate or racing
end events (a cancel racing a completion) move a task only once.

Rules, applied in the order events arrive:

* an end event (completed, failed, cancelled) is final: later events about
  that task are ignored, so duplicates are harmless;
* an event about an older attempt than the task's latest is stale and ignored;
* ``task_retrying`` puts the task in ``retrying``, which counts as queued: the
  task will run again after its backoff without anyone acting on it;
* the one exception to the first rule: a ``task_queued`` for a failed or
  cancelled task with an attempt after every attempt seen before its end is an
  operator's retry (``Executor.retry``): the task leaves its end count for
  ``queued`` again (``"task_retry"``).

Only tasks that have not ended are kept per task; an ended task's id is
remembered (to ignore late duplicates) for the newest ``remember_ended`` ends,
and the ids forgotten beyond that are counted in ``ended_forgotten``. The end
counts are running sums and never depend on what is remembered.

A mixin of ``SessionAggregate`` (``_aggregate``), which holds the state and calls
``_apply_task_event`` for every task event: no attribute hop more per event
than when this was one class.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Literal

from events import (
    END_STATES,
    Event,
    Published,
    TaskState,
)

#: The broadcasts a task event can call for (a part of ``_aggregate.Trigger``).
TaskTrigger = Literal["task_start", "task_end", "task_retry"]


class TaskStateTally:
    """Each task's latest state and the per-state counts (see the module's rules);
    mixed into ``SessionAggregate``, which holds the state below."""

    if not TYPE_CHECKING:
        # No ``__dict__`` for the slotted aggregate; hidden from mypy, whose check of
        # assignments against ``__slots__`` cannot see the aggregate's slots.
        __slots__ = ()
    else:
        # ``SessionAggregate``'s, read and written here.
        remember_ended: int
        ended_forgotten: int
        retried_from: TaskState | None
        _tasks: dict[str, tuple[TaskState, int]]
        _ended: dict[str, tuple[TaskState, int]]
        _ended_order: deque[str]
        _counts: dict[TaskState, int]

        def _note_start(self, item: Published) -> None: ...

    def _apply_task_event(
        self, item: Published, event: Event, new_state: TaskState
    ) -> TaskTrigger | None:
        task_id = event.task_id
        # task_cancelled carries no attempt: a cancel applies to the latest one.
        attempt: int | None = getattr(event, "attempt", None)
        if task_id in self._ended:
            return self._maybe_retry(task_id, new_state, attempt)  # else an end is final
        old_state, old_attempt = self._tasks.get(task_id, (None, 0))
        if attempt is not None and attempt < old_attempt:
            return None  # about an attempt that was superseded
        if new_state in END_STATES:
            self._tasks.pop(task_id, None)
            self._remember_end(task_id, new_state, old_attempt if attempt is None else attempt)
        else:
            self._tasks[task_id] = (new_state, max(attempt or 1, old_attempt))
            if old_state == new_state:
                return None
        if old_state is not None:
            self._counts[old_state] -= 1
        self._counts[new_state] += 1
        if new_state == "running":
            self._note_start(item)
            return "task_start"
        if old_state == "running" or new_state in END_STATES:
            return "task_end"
        return None

    def _maybe_retry(
        self, task_id: str, new_state: TaskState, attempt: int | None
    ) -> TaskTrigger | None:
        """An ended task queued again for a later attempt: an operator's retry."""
        ended_state, ended_attempt = self._ended[task_id]
        if (
            new_state != "queued"
            or ended_state == "completed"
            or attempt is None
            or attempt <= ended_attempt
        ):
            return None  # a late or duplicate event: the end stands
        del self._ended[task_id]
        self._ended_order.remove(task_id)  # rare (an operator's act): a scan is fine
        self._counts[ended_state] -= 1
        self._counts["queued"] += 1
        self._tasks[task_id] = ("queued", attempt)
        self.retried_from = ended_state
        return "task_retry"

    def _remember_end(self, task_id: str, state: TaskState, attempt: int) -> None:
        self._ended[task_id] = (state, attempt)
        order = self._ended_order
        order.append(task_id)
        if len(order) > self.remember_ended:
            del self._ended[order.popleft()]
            self.ended_forgotten += 1
