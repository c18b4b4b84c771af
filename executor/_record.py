"""The executor's private record of one task, and the handle given to callers."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from events import Event, TaskCancelled, TaskCompleted, TaskFailed, truncate
from events.lowlevel import fast_constructor

from ._cost import TokenCounts
from ._exceptions import TaskCancelledError, TaskFailedError
from ._states import TERMINAL_STATES, TRANSITIONS, TaskInfo, TaskState, check_transition

if TYPE_CHECKING:
    from ._executor import Executor

TaskFunction = Callable[..., Awaitable[Any]]
#: Shared by every record and context that has counted nothing yet (it is frozen).
NO_TOKENS = TokenCounts()
EndState = Literal["completed", "failed", "cancelled"]
# Checked as the class checks them, built without attrs' per-field setattr calls.
_task_completed = fast_constructor(TaskCompleted)


#: A finished task's order and final values (see ``TaskRecord.retire``).
FinishedRow = tuple[
    int,
    str,
    str,
    TaskState,
    int,
    datetime | None,
    datetime | None,
    TokenCounts,
    float,
    str | None,
    int | None,
    int,
    int,
]


def info_from_row(row: FinishedRow) -> TaskInfo:
    """The ``TaskInfo`` of a finished task's row."""
    (
        _,
        task_id,
        name,
        state,
        attempts,
        started,
        ended,
        tokens,
        cost,
        error,
        code,
        priority,
        unpriced,
    ) = row
    return TaskInfo(
        task_id=task_id,
        name=name,
        state=state,
        attempts=attempts,
        started_at=started,
        ended_at=ended,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        estimated_cost_usd=cost,
        error=error,
        exit_code=code,
        priority=priority,
        unpriced_tokens=unpriced,
    )


@attrs.define(eq=False)
class TaskRecord:
    """Mutable state of one task; only the executor changes it."""

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

    def retire(self) -> FinishedRow:
        """Let go of what only running needed (``result`` stays for the handle's
        holder); returns its final values, kept for :func:`info_from_row` (made
        for every finished task, so cheap: a ``TaskInfo`` costs ~8x more to
        build and is built only when asked)."""
        self.fn = None
        self.args = ()
        self.scope = None
        self.context = None
        return (
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
        self.cancel_reason = self.cancel_reason or reason
        self.error = truncate(reason)
        return TaskCancelled(task_id=self.task_id, reason=self.error, was_running=was_running)

    def info(self) -> TaskInfo:
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


@attrs.frozen(eq=False)
class TaskHandle:
    """What ``submit`` returns: await the outcome or cancel the task."""

    _executor: Executor
    _record: TaskRecord

    @property
    def task_id(self) -> str:
        return self._record.task_id

    @property
    def state(self) -> TaskState:
        return self._record.state

    def info(self) -> TaskInfo:
        return self._record.info()

    async def wait(self) -> Any:
        """The task's result; raises ``TaskFailedError`` or ``TaskCancelledError``."""
        record = self._record
        if record.state in TERMINAL_STATES:
            await trio.lowlevel.checkpoint()
        else:
            if record.done is None:
                record.done = trio.Event()
            await record.done.wait()
        if record.state == "completed":
            return record.result
        if record.state == "cancelled":
            raise TaskCancelledError(record.task_id, record.cancel_reason or "cancelled")
        raise TaskFailedError(
            record.task_id,
            record.error or "failed",
            exit_code=record.exit_code,
            timed_out=isinstance(record.failure, trio.TooSlowError),
        ) from record.failure

    def cancel(self, reason: str = "cancelled by operator") -> bool:
        """Cancel the task; False if it had already ended."""
        return self._executor.cancel(self.task_id, reason=reason)
