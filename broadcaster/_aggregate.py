"""The session aggregate, built from executor events alone.

Every task's latest state is kept, and the per-state counts moved with each
transition, by the ``TaskStateTally`` mixin of ``_task_states``, whose
docstring gives the rules (ends are final, stale attempts ignored, an
operator's retry reopens a task) and what is remembered of ended tasks.

The usage totals are running sums, read through the caps of ``_totals``: a
total past its cap (far beyond any input the parsers accept; a float cost sum
may even reach inf) reads as the cap, ``saturated`` says so, and the first
snapshot that finds it so logs a warning. Capping when read, not per record,
keeps the per-event path as it was.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Final, Literal

import attrs
import structlog
import trio

from events import (
    TASK_STATES,
    Actor,
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
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskState,
    TaskUsage,
    total_tokens,
)

from ._exceptions import BroadcasterConfigError, RestoreError
from ._task_states import TaskStateTally, TaskTrigger
from ._totals import MAX_TOTAL_COST_USD, MAX_TOTAL_TOKENS, capped_cost, capped_tokens

log = structlog.get_logger("runcast.broadcaster")


#: What a change to the aggregate asks of the broadcaster.
Trigger = Literal[
    TaskTrigger,
    "pause",
    "budget",
    "concurrency",
    "subscribe",
    "usage",
    "tick",
    "stale",
]
TRIGGERS: Final[tuple[Trigger, ...]] = (
    "task_start",
    "task_end",
    "task_retry",
    "pause",
    "budget",
    "concurrency",
    "subscribe",
    "usage",
    "tick",
    "stale",
)


#: Ended task ids remembered so late events about them are ignored (the
#: executor sends exactly one end per task; this guards against duplicates).
DEFAULT_REMEMBER_ENDED: Final = 10_000


def _zero_counts() -> dict[TaskState, int]:
    return dict.fromkeys(TASK_STATES, 0)


@attrs.define(eq=False)
class SessionAggregate(TaskStateTally):
    """Duration, tokens, cost, task counts, pause and budget of one session.

    ``clock`` is monotonic seconds (``trio.current_time`` by default); it is
    only read when a task starts and when the duration is asked for.
    ``wall_clock`` (a cluster serve node's): the duration counts from the first
    start event's own time, not from when this process read it, so a node
    that catches up on a stream (started late, or back after Redis was away)
    reports the duration every other node does.
    """

    session_id: str
    clock: Callable[[], float] = trio.current_time
    wall_clock: Callable[[], datetime] | None = None
    #: The numbers may be behind: a cluster serve node cannot read its stream.
    stale: bool = False
    started_at: datetime | None = None
    # The running sums, uncapped (see the module docstring); read them capped
    # through the properties of the same names.
    _input_tokens: int = 0
    _output_tokens: int = 0
    _cache_read_tokens: int = 0
    _cache_write_tokens: int = 0
    _cost_usd: float = 0.0
    _unpriced_tokens: int = 0
    is_paused: bool = False
    #: Who paused and why (the last ``executor_paused``); None while not paused.
    paused_by: Actor | None = None
    pause_reason: str | None = None
    budget_usd: float | None = None
    #: The executor's concurrency once an operator changed it (``concurrency_changed``).
    concurrency: int | None = None
    restored: bool = False
    remember_ended: int = DEFAULT_REMEMBER_ENDED
    #: Ended task ids forgotten to respect ``remember_ended``.
    ended_forgotten: int = 0
    # Tasks that have not ended: latest state and attempt.
    _tasks: dict[str, tuple[TaskState, int]] = attrs.field(factory=dict)
    # The newest ended tasks' final states, and their ids oldest first: taking a
    # dict's first key instead scans the slots its deletions left, a cost that
    # grows with what is remembered (bench/HISTORY.md#forgetting-the-oldest-through-a-deque-kept).
    # (Each with the last attempt that ran: a retry queues a later one.)
    _ended: dict[str, tuple[TaskState, int]] = attrs.field(factory=dict)
    #: The end state the latest ``"task_retry"`` took its task from.
    retried_from: TaskState | None = None
    _ended_order: deque[str] = attrs.field(factory=deque)
    _counts: dict[TaskState, int] = attrs.field(factory=_zero_counts)
    _base_ended: dict[TaskState, int] = attrs.field(factory=_zero_counts)
    _first_start: float | None = None
    _duration_offset: int = 0
    _last_duration: int = 0
    _said_saturated: bool = False

    def __attrs_post_init__(self) -> None:
        # Checked here, not by an attrs validator: one would make every
        # attribute assignment (several per event) go through attrs' hooks.
        value = self.remember_ended
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BroadcasterConfigError(f"remember_ended must be an int >= 0, got {value!r}")

    # -- reading -------------------------------------------------------------
    @property
    def tasks_running(self) -> int:
        return self._counts["running"]

    @property
    def tasks_queued(self) -> int:
        return self._counts["queued"] + self._counts["retrying"]

    def ended(self, state: TaskState) -> int:
        """Tasks that ended in ``state``, restored ones included."""
        return self._base_ended[state] + self._counts[state]

    def task_state(self, task_id: str) -> TaskState | None:
        """The task's latest state; None if unknown or ended and forgotten."""
        record = self._tasks.get(task_id)
        if record is not None:
            return record[0]
        ended = self._ended.get(task_id)
        return None if ended is None else ended[0]

    def count(self, state: TaskState) -> int:
        """Tasks of this process whose latest state is ``state``."""
        return self._counts[state]

    @property
    def input_tokens(self) -> int:
        return capped_tokens(self._input_tokens)

    @property
    def output_tokens(self) -> int:
        return capped_tokens(self._output_tokens)

    @property
    def cache_read_tokens(self) -> int:
        return capped_tokens(self._cache_read_tokens)

    @property
    def cache_write_tokens(self) -> int:
        return capped_tokens(self._cache_write_tokens)

    @property
    def unpriced_tokens(self) -> int:
        return capped_tokens(self._unpriced_tokens)

    @property
    def cost_usd(self) -> float:
        return capped_cost(self._cost_usd)

    @property
    def total_tokens(self) -> int:
        return total_tokens(self)

    @property
    def saturated(self) -> bool:
        """True once a usage total has passed its cap (it reads as the cap)."""
        return (
            max(
                self._input_tokens,
                self._output_tokens,
                self._cache_read_tokens,
                self._cache_write_tokens,
                self._unpriced_tokens,
            )
            > MAX_TOTAL_TOKENS
            or self._cost_usd > MAX_TOTAL_COST_USD
        )

    @property
    def budget_remaining_usd(self) -> float | None:
        if self.budget_usd is None:
            return None
        return max(0.0, self.budget_usd - self.cost_usd)

    @property
    def last_duration_seconds(self) -> int:
        """The duration as last computed, readable without a clock (outside trio)."""
        return self._last_duration

    def duration_seconds(self) -> int:
        """Whole seconds since the first task start, plus any restored duration; never falls."""
        if self._first_start is None:
            return self._last_duration
        elapsed = int(self.clock() - self._first_start)
        self._last_duration = max(self._last_duration, self._duration_offset + elapsed)
        return self._last_duration

    def snapshot(self) -> SessionUpdate:
        if not self._said_saturated and self.saturated:
            self._said_saturated = True
            log.warning(
                "usage totals saturated: a total stays at its cap",
                session_id=self.session_id,
                max_total_tokens=MAX_TOTAL_TOKENS,
                max_total_cost_usd=MAX_TOTAL_COST_USD,
            )
        return SessionUpdate(
            duration_seconds=self.duration_seconds(),
            total_tokens=self.total_tokens,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            estimated_cost_usd=self.cost_usd,
            tasks_running=self.tasks_running,
            is_paused=self.is_paused,
            session_id=self.session_id,
            started_at=self.started_at,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            tasks_queued=self.tasks_queued,
            tasks_completed=self.ended("completed"),
            tasks_failed=self.ended("failed"),
            tasks_cancelled=self.ended("cancelled"),
            unpriced_tokens=self.unpriced_tokens,
            budget_usd=self.budget_usd,
            concurrency=self.concurrency,
            budget_remaining_usd=self.budget_remaining_usd,
            paused_by=self.paused_by,
            pause_reason=self.pause_reason,
            stale=self.stale,
        )

    # -- seeding -------------------------------------------------------------
    def restore(self, previous: SessionUpdate) -> None:
        """Carry on from a stored snapshot of the same session.

        Tokens, cost, end counts and duration become the base the live values
        add to; the session id, start time, pause and budget are taken as they
        were. Running and queued counts are not: the executor re-queues those
        tasks and its events count them again.
        """
        if self.restored:
            raise RestoreError("the session was already restored once")
        seen_tasks = bool(self._tasks or self._ended)
        if seen_tasks or self.total_tokens or self.cost_usd or self._first_start is not None:
            raise RestoreError(
                "restore must happen before the first task or usage event of this process"
            )
        self.restored = True
        self.session_id = previous.session_id or self.session_id
        self.started_at = previous.started_at
        self._input_tokens = previous.input_tokens
        self._output_tokens = previous.output_tokens
        self._cache_read_tokens = previous.cache_read_tokens
        self._cache_write_tokens = previous.cache_write_tokens
        self._cost_usd = previous.estimated_cost_usd
        self._unpriced_tokens = previous.unpriced_tokens
        self.is_paused = previous.is_paused
        self.paused_by = previous.paused_by if previous.is_paused else None
        self.pause_reason = previous.pause_reason if previous.is_paused else None
        self.budget_usd = previous.budget_usd
        self._base_ended["completed"] = previous.tasks_completed
        self._base_ended["failed"] = previous.tasks_failed
        self._base_ended["cancelled"] = previous.tasks_cancelled
        self._duration_offset = previous.duration_seconds
        self._last_duration = previous.duration_seconds

    # -- applying events -------------------------------------------------------
    def apply(self, item: Published) -> Trigger | None:
        """Fold one published event in; returns the broadcast it calls for, if any.

        ``"task_end"`` comes back exactly when a task's end is counted (or a
        running task went back to retrying); a duplicate end returns None.
        """
        event = item.event
        # Dispatch on the exact class: this runs inline for every event published.
        target = _TASK_TARGETS.get(type(event))
        if target is not None:
            return self._apply_task_event(item, event, target)
        if isinstance(event, TaskUsage):
            self._add_usage(event)
            return "usage"
        if isinstance(event, ExecutorPaused):
            self.is_paused = True
            self.paused_by = event.by
            self.pause_reason = event.reason
            return "pause"
        if isinstance(event, ExecutorResumed):
            self.is_paused = False
            self.paused_by = self.pause_reason = None
            return "pause"
        if isinstance(event, ConcurrencyChanged):
            self.concurrency = event.concurrency
            return "concurrency"
        if isinstance(event, BudgetChanged | BudgetWarning | BudgetExhausted):
            changed = event.budget_usd != self.budget_usd
            self.budget_usd = event.budget_usd
            return "budget" if changed else None
        return None

    def _add_usage(self, event: TaskUsage) -> None:
        self._input_tokens += event.input_tokens
        self._output_tokens += event.output_tokens
        self._cache_read_tokens += event.cache_read_tokens
        self._cache_write_tokens += event.cache_write_tokens
        if event.cost_usd is None:
            self._unpriced_tokens += event.total_tokens
        else:
            self._cost_usd += event.cost_usd

    def _note_start(self, item: Published) -> None:
        if self._first_start is None:
            self._first_start = self.clock()
            if self.wall_clock is not None:
                age = (self.wall_clock() - item.time).total_seconds()
                self._first_start -= max(0.0, age)
            if self.started_at is None:
                self.started_at = item.time


# Defined here, beside ``apply``, not imported: CPython 3.11 compiles a method call
# on a name bound by an import as an attribute load that builds a bound method on
# every call (no LOAD_METHOD), ~480 instructions more per event (callgrind).
_TASK_TARGETS: Final[dict[type[Event], TaskState]] = {
    TaskQueued: "queued",
    TaskStarted: "running",
    TaskRetrying: "retrying",
    TaskCompleted: "completed",
    TaskFailed: "failed",
    TaskCancelled: "cancelled",
}
