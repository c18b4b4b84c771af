"""The executor's record of one task while it lives, and what is kept once it ended.

A ``TaskRecord`` is mutable and changed only by the lifecycle
(``_lifecycle.TaskLifecycle``); a task's ``TaskContext`` adds its usage, exit
code and process groups.  When the task ends, ``retire`` lets go of what only
running needed and returns its ``FinishedRow``: the final values the registry
keeps, from which a ``TaskInfo`` is built only when someone asks.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, NamedTuple

import attrs
import trio

from events import Event, TaskCancelled, TaskCompleted, TaskFailed, TaskState, truncate
from events.lowlevel import fast_constructor

from ._states import TRANSITIONS, TaskInfo, check_transition
from .usage import NO_TOKENS, TokenCounts

TaskFunction = Callable[..., Awaitable[Any]]
EndState = Literal["completed", "failed", "cancelled"]
# Checked as the class checks them, built without attrs' per-field setattr calls.
_task_completed = fast_constructor(TaskCompleted)


class FinishedRow(NamedTuple):
    """A finished task's final values (made by ``TaskRecord.retire``).

    Made for every finished task, so cheap: a tuple, built by ``_make`` (the
    constructor adds a Python call), where a ``TaskInfo`` costs several times
    more and is built only when asked (bench/HISTORY.md, "Publisher and
    registry trims").
    """

    order: int
    task_id: str
    name: str
    state: TaskState
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    tokens: TokenCounts
    cost_usd: float
    error: str | None
    exit_code: int | None
    priority: int
    unpriced_tokens: int

    def info(self) -> TaskInfo:
        """The finished task's snapshot."""
        tokens = self.tokens
        return TaskInfo(
            task_id=self.task_id,
            name=self.name,
            state=self.state,
            attempts=self.attempts,
            started_at=self.started_at,
            ended_at=self.ended_at,
            input_tokens=tokens.input,
            output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read,
            cache_write_tokens=tokens.cache_write,
            estimated_cost_usd=self.cost_usd,
            error=self.error,
            exit_code=self.exit_code,
            priority=self.priority,
            unpriced_tokens=self.unpriced_tokens,
        )


_finished_row = FinishedRow._make


@attrs.define(eq=False)
class TaskRecord:
    """Mutable state of one task: the lifecycle moves it between states; its
    ``TaskContext`` adds usage, the exit code and process groups."""

    task_id: str
    name: str
    # None once the task has ended: nothing keeps its closure and arguments alive.
    fn: TaskFunction | None
    args: tuple[Any, ...]
    timeout: float | None
    retries: int
    priority: int
    order: int
    model: str = ""
    provider: str | None = None
    state: TaskState = "queued"
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempt_started: float = 0.0
    tokens: TokenCounts = NO_TOKENS
    cost_usd: float = 0.0
    unpriced_tokens: int = 0
    error: str | None = None
    exit_code: int | None = None
    result: Any = None
    failure: BaseException | None = None
    cancel_reason: str | None = None
    # The scope of the running attempt or of the retry back-off, whichever is live.
    scope: trio.CancelScope | None = None
    # Made when someone waits for the end, so a task nobody waits for costs no Event.
    done: trio.Event | None = None
    # Made by the first process group (subprocess tasks only).
    process_groups: set[int] | None = None
    # The submitter's context variables, as at submit (asyncio.create_task's rule):
    # attempts are spawned in it, not in whichever task's end happened to start them.
    context: contextvars.Context | None = None
    #: Cancelled while queued: the attempt its ``task_queued`` announced never ran.
    skipped_attempt: bool = False

    def retire(self) -> FinishedRow:
        """Let go of what only running needed (``result`` stays for the handle's
        holder); returns its final values."""
        self.fn = None
        self.args = ()
        self.scope = None
        self.context = None
        return _finished_row(
            (
                self.order,
                self.task_id,
                self.name,
                self.state,
                self.attempts,
                self.started_at,
                self.ended_at,
                self.tokens,
                self.cost_usd,
                self.error,
                self.exit_code,
                self.priority,
                self.unpriced_tokens,
            )
        )

    def reopen(
        self, fn: TaskFunction, args: tuple[Any, ...], context: contextvars.Context | None
    ) -> None:
        """Back to ``queued`` from a retriable end (``Executor.retry``), its function
        and arguments given back; attempts, usage and cost carry on."""
        if self.skipped_attempt:
            self.attempts += 1
            self.skipped_attempt = False
        self.fn = fn
        self.args = args
        self.context = context
        self.state = "queued"
        self.ended_at = None
        self.error = None
        self.exit_code = None
        self.result = None
        self.failure = None
        self.cancel_reason = None
        self.scope = None
        self.process_groups = None
        # The old end woke its waiters; whoever waits now waits for the new one.
        self.done = None

    def move_to(self, target: TaskState) -> None:
        if target not in TRANSITIONS[self.state]:  # check_transition, one frame less
            check_transition(self.task_id, self.state, target)
        self.state = target

    def finish(
        self,
        state: EndState,
        now: float,
        *,
        reason: str,
        error: BaseException | None,
        describe: Callable[[BaseException], str],
    ) -> Event:
        """Move to a final state; returns the event announcing it."""
        was_running = self.state == "running"
        duration = max(0.0, now - self.attempt_started) if was_running else 0.0
        attempt = max(1, self.attempts)
        cancelled_queued = state == "cancelled" and self.state == "queued"
        self.move_to(state)
        if state == "completed":
            return _task_completed(
                task_id=self.task_id,
                attempt=attempt,
                duration_seconds=duration,
                exit_code=self.exit_code,
            )
        if state == "failed":
            assert error is not None
            self.failure = error
            self.error = describe(error)
            return TaskFailed(
                task_id=self.task_id,
                attempt=attempt,
                error=self.error,
                duration_seconds=duration,
                exit_code=self.exit_code,
                timed_out=isinstance(error, trio.TooSlowError),
            )
        if cancelled_queued:
            # Its next attempt was announced (task_queued) and never ran: a retry
            # numbers on past it, so no attempt number is announced twice.
            self.skipped_attempt = True
        self.cancel_reason = self.cancel_reason or reason
        self.error = truncate(reason)
        return TaskCancelled(task_id=self.task_id, reason=self.error, was_running=was_running)

    def info(self) -> TaskInfo:
        """The live task's snapshot."""
        return TaskInfo(
            task_id=self.task_id,
            name=self.name,
            state=self.state,
            attempts=self.attempts,
            started_at=self.started_at,
            ended_at=self.ended_at,
            input_tokens=self.tokens.input,
            output_tokens=self.tokens.output,
            cache_read_tokens=self.tokens.cache_read,
            cache_write_tokens=self.tokens.cache_write,
            estimated_cost_usd=self.cost_usd,
            error=self.error,
            exit_code=self.exit_code,
            priority=self.priority,
            unpriced_tokens=self.unpriced_tokens,
        )
