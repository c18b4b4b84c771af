"""The trio executor: bounded concurrency, validated task states, pause and budget.

Every state change happens synchronously in the executor (never in a detached
task), then its event is published; so ``tasks()``, ``is_paused`` and the event
stream always agree with each other.
"""

from __future__ import annotations

import contextvars
import signal
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Final

import attrs
import trio

from events import (
    BudgetChanged,
    Event,
    ExecutorPaused,
    ExecutorResumed,
    Published,
    Publisher,
    TaskQueued,
    TaskRetrying,
    TaskStarted,
    TaskUsage,
    truncate,
)
from events.lowlevel import fast_constructor

from ._budget import Budget, check_budget
from ._checks import check_names, check_submission
from ._command import CommandSpec, run_command
from ._context import TaskContext
from ._cost import CostCalculator, TokenCounts
from ._exceptions import (
    BudgetExceededError,
    ExecutorClosedError,
    InvalidArgumentError,
    UnknownTaskError,
)
from ._failures import describe_failure as _describe
from ._queue import TaskQueue
from ._reaping import signal_group_logged
from ._registry import TaskPage, TaskRegistry
from ._spending import Spending
from ._states import TaskInfo, as_actor
from ._task import EndState, TaskFunction, TaskHandle, TaskRecord
from ._workers import WorkerPool

#: Most tasks started in one go; more wait for the next turn of the event loop,
#: so a burst (a resume with 1,000 queued) never holds the loop for long and the
#: broadcaster's first update goes out after the first chunk.
FILL_CHUNK: Final = 64
# Checked as the classes check them, built without attrs' per-field setattr calls.
_task_queued = fast_constructor(TaskQueued)
_task_started = fast_constructor(TaskStarted)
_task_handle = fast_constructor(TaskHandle)


@attrs.define(eq=False)
class Executor:
    """Runs submitted tasks in its nursery; open it with :func:`open_executor`."""

    _publisher: Publisher = attrs.field(repr=False)
    _nursery: trio.Nursery = attrs.field(repr=False)
    concurrency: int
    retry_backoff: float
    kill_grace: float
    suspend_on_pause: bool
    _costs: CostCalculator = attrs.field(repr=False)
    _budget: Budget
    _paused: bool = False
    _unpaused: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _registry: TaskRegistry = attrs.field(factory=TaskRegistry, repr=False)
    _queue: TaskQueue = attrs.field(factory=TaskQueue, repr=False)
    _running: int = 0
    _active: int = 0
    _idle: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _submitted: int = 0
    _closed: bool = False
    _fill_pending: bool = False
    _pool: WorkerPool = attrs.field(init=False, repr=False)
    _spending: Spending = attrs.field(init=False, repr=False)
    # The run's clock, read directly (``trio.current_time()`` adds two frames).
    _clock: trio.abc.Clock = attrs.field(init=False, repr=False)
    # Output lines cut to fit (a line reader's bound or MAX_OUTPUT_LINE).
    output_lines_truncated: int = 0
    # Usage records refused for a number out of range (their lines stay output).
    usage_records_refused: int = 0
    # Model or provider names a task reported that were cut to MAX_NAME.
    names_cut: int = 0

    def __attrs_post_init__(self) -> None:
        self._pool = WorkerPool(self, self._nursery, self.concurrency)
        self._clock = trio.lowlevel.current_clock()
        self._spending = Spending(self._publish, self.pause, self._costs, self._budget)

    # -- properties --------------------------------------------------------
    @property
    def is_paused(self) -> bool:
        return self._paused

    @property
    def budget_usd(self) -> float | None:
        return self._budget.limit

    @property
    def spent_usd(self) -> float:
        """USD of all priced usage so far (unpriced usage adds nothing)."""
        return self._budget.spent

    @property
    def running_count(self) -> int:
        return self._running

    @property
    def publisher(self) -> Publisher:
        return self._publisher

    def tasks(self) -> list[TaskInfo]:
        """A snapshot of every live task and the newest ``keep_finished`` finished
        ones, in submission order (``finished_evicted`` says how many are left out)."""
        return self._registry.infos()

    def task_page(
        self, *, after: int | None = None, limit: int, states: Collection[str] | None = None
    ) -> TaskPage:
        """Up to ``limit`` tasks of :meth:`tasks`: those after ``after`` (the previous
        page's ``next_after``; None: from the first) and, if given, in ``states``.
        Costs ``limit`` snapshots where :meth:`tasks` makes one per task."""
        return self._registry.page(after, limit, states)

    def task(self, task_id: str) -> TaskInfo:
        """One task's snapshot; ``UnknownTaskError`` if unknown or no longer kept."""
        return self._registry.info(task_id)

    def has_task(self, task_id: str) -> bool:
        """Whether ``task_id`` was ever submitted here (kept or not)."""
        return task_id in self._registry.ids

    @property
    def keep_finished(self) -> int:
        return self._registry.keep_finished

    @property
    def finished_evicted(self) -> int:
        """Finished tasks no longer listed by ``tasks()`` (beyond ``keep_finished``)."""
        return self._registry.finished_evicted

    @property
    def waiting_count(self) -> int:
        """Tasks queued or waiting out a retry back-off."""
        return self._active - self._running

    async def join(self) -> None:
        """Wait until no task is queued, running or waiting to retry."""
        while self._active:
            await self._idle.wait()
        await trio.lowlevel.checkpoint()

    # -- submitting --------------------------------------------------------
    def submit(
        self,
        fn: TaskFunction,
        *args: Any,
        task_id: str | None = None,
        name: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        priority: int = 0,
        model: str = "",
        provider: str | None = None,
        attempts_used: int = 0,
    ) -> TaskHandle:
        """Queue ``await fn(ctx, *args)``; higher ``priority`` starts first, then FIFO.

        ``attempts_used`` counts attempts made before this executor existed (a
        resumed run): they count against ``retries`` like attempts made here.
        """
        if self._closed:
            raise ExecutorClosedError("the executor is closed; tasks can no longer be submitted")
        task_id = check_submission(
            fn, task_id, self._registry.ids, timeout, retries, priority, attempts_used
        )
        check_names(model, provider)
        if name is None:
            name = getattr(fn, "__name__", "") or task_id
        record = TaskRecord(
            task_id=task_id,
            name=truncate(name),
            fn=fn,
            args=args,
            timeout=timeout,
            retries=retries,
            priority=priority,
            order=self._submitted,
            model=model,
            provider=provider,
            attempts=attempts_used,
            context=contextvars.copy_context(),
        )
        self._submitted += 1
        self._registry.live[task_id] = record
        if self._active == 0:
            self._idle = trio.Event()
        self._active += 1
        self._enqueue(record)
        return _task_handle(_executor=self, _record=record)

    def submit_command(self, spec: CommandSpec, *, attempts_used: int = 0) -> TaskHandle:
        """Queue a subprocess task (see :class:`CommandSpec`)."""
        if not isinstance(spec, CommandSpec):
            raise InvalidArgumentError(f"expected a CommandSpec, got {spec!r}")
        return self.submit(
            self._run_command,
            spec,
            task_id=spec.id,
            name=spec.display_name,
            timeout=spec.timeout,
            retries=spec.retries,
            priority=spec.priority,
            model=spec.model or "",
            provider=spec.provider,
            attempts_used=attempts_used,
        )

    async def _run_command(self, ctx: TaskContext, spec: CommandSpec) -> int:
        return await run_command(ctx, spec, kill_grace=self.kill_grace)

    def _enqueue(self, record: TaskRecord) -> None:
        self._queue.push(record)
        self._publisher.publish(
            _task_queued(
                task_id=record.task_id,
                name=record.name,
                attempt=record.attempts + 1,
                priority=record.priority,
            )
        )
        if self._running < self.concurrency:  # else nothing can start (most submits)
            self._fill()

    # -- scheduling --------------------------------------------------------
    def _fill(self) -> None:
        """Start queued tasks while slots are free and the executor is not paused.

        At most ``FILL_CHUNK`` at once: the rest are started by a task of the
        executor's nursery, a turn of the event loop later (still in priority
        order, since each start pops the queue's head at that moment).
        """
        if self._closed:
            return
        queue = self._queue
        started = 0
        while not self._paused and self._running < self.concurrency and queue.length:
            if started == FILL_CHUNK:
                if not self._fill_pending:
                    self._fill_pending = True
                    self._nursery.start_soon(self._fill_later, name="runcast executor fill")
                return
            record = queue.pop()
            if record.state == "queued":  # cancelled ones are dropped lazily here
                self._start(record)
                started += 1

    async def _fill_later(self) -> None:
        # A new task's first step comes after the tasks already runnable (the
        # broadcaster's flusher among them) have had their turn.
        self._fill_pending = False
        self._fill()

    def _start(self, record: TaskRecord) -> None:
        record.move_to("running")
        self._running += 1
        record.attempts += 1
        record.attempt_started = self._clock.current_time()
        record.scope = None  # its worker's, once one takes it
        published = self._publisher.publish(
            _task_started(task_id=record.task_id, name=record.name, attempt=record.attempts)
        )
        if record.started_at is None:
            # The event's own time stamp: one clock reading per transition.
            record.started_at = self._stamp(published)
        self._pool.hand_over(record)

    def _attempt_failed(self, record: TaskRecord, error: BaseException) -> None:
        if record.attempts > record.retries:
            self._end(record, "failed", error=error)
            return
        delay = self.retry_backoff * 2 ** (record.attempts - 1)
        record.move_to("retrying")
        self._running -= 1
        record.scope = trio.CancelScope()
        self._publish(
            TaskRetrying(
                task_id=record.task_id,
                attempt=record.attempts,
                delay_seconds=delay,
                error=_describe(error),
            )
        )
        self._nursery.start_soon(self._retry_after, record, delay, record.scope)
        self._fill()

    async def _retry_after(self, record: TaskRecord, delay: float, scope: trio.CancelScope) -> None:
        slept = False
        try:
            with scope:
                await trio.sleep(delay)
                slept = True
        finally:
            # ``cancel()`` ends a retrying task itself; anything else that cuts
            # the sleep short is the executor shutting down.
            if record.state == "retrying":
                if slept:
                    record.move_to("queued")
                    self._enqueue(record)
                else:
                    self._end(record, "cancelled", reason="executor stopped")

    def _end(
        self,
        record: TaskRecord,
        state: EndState,
        *,
        reason: str = "",
        error: BaseException | None = None,
    ) -> None:
        was_running = record.state == "running"
        event = record.finish(
            state, self._clock.current_time(), reason=reason, error=error, describe=_describe
        )
        if was_running:
            self._running -= 1
        self._active -= 1
        published = self._publisher.publish(event)
        record.ended_at = self._publisher.clock() if published is None else published.time
        self._registry.finish(record)
        if record.done is not None:
            record.done.set()
        if self._active == 0:
            self._idle.set()
        if self._queue.length:
            self._fill()

    # -- operator controls -------------------------------------------------
    def cancel(self, task_id: str, *, reason: str = "cancelled by operator") -> bool:
        """Cancel a queued, retrying or running task; False if it had already ended.

        A running task is cancelled where it is (a subprocess gets SIGTERM, then
        SIGKILL after ``kill_grace``); it reaches ``cancelled`` once it is gone.
        """
        record = self._registry.live.get(task_id)
        if record is None:
            if task_id in self._registry.ids:
                return False  # ended (and maybe no longer kept)
            raise UnknownTaskError(f"no task with id {task_id!r}")
        if record.cancel_reason is not None:
            return False
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a string, got {reason!r}")
        record.cancel_reason = truncate(reason)
        if record.state == "running":
            # Without a scope it waits for a worker, which ends it unrun.
            if record.scope is not None:
                record.scope.cancel()
        else:
            if record.scope is not None:  # a retry back-off
                record.scope.cancel()
            self._end(record, "cancelled", reason=reason)
        return True

    def cancel_all(self, *, reason: str = "cancelled by operator") -> int:
        """Cancel every task that has not ended; returns how many were cancelled."""
        return sum(self.cancel(task_id, reason=reason) for task_id in list(self._registry.live))

    def pause(self, *, by: str = "operator", reason: str = "") -> None:
        """Stop starting queued tasks; idempotent (a second pause publishes nothing)."""
        event = ExecutorPaused(by=as_actor(by), reason=truncate(reason))
        if self._paused:
            return
        self._paused = True
        self._unpaused = trio.Event()
        self._publish(event)
        if self.suspend_on_pause:
            self._signal_groups(signal.SIGSTOP)

    def resume(self, *, by: str = "operator", reason: str = "") -> None:
        """Start queued tasks again; refused while the spend has reached the budget."""
        event = ExecutorResumed(by=as_actor(by), reason=truncate(reason))
        if self._budget.exceeded:
            raise BudgetExceededError(
                f"cannot resume: spent ${self._budget.spent:.4f} of the "
                f"${self._budget.limit:.4f} budget; raise the budget first"
            )
        if not self._paused:
            return
        self._paused = False
        self._unpaused.set()
        self._publish(event)
        if self.suspend_on_pause:
            self._signal_groups(signal.SIGCONT)
        self._fill()

    def set_budget(self, usd: float | None, *, by: str = "operator") -> None:
        """Change (or with None remove) the budget; publishes ``budget_changed``.

        Raising the budget does not resume a budget pause: that is a separate
        operator decision.  Lowering it below the spend pauses at once.
        """
        usd = check_budget(usd)
        self._spending.set_limit(usd, as_actor(by))

    async def _wait_unpaused(self) -> None:
        await self._unpaused.wait()

    # -- usage and budget --------------------------------------------------
    def _record_usage(
        self,
        record: TaskRecord,
        model: str,
        provider: str | None,
        tokens: TokenCounts,
        reported_usd: float | None,
        parts: Sequence[TokenCounts] = (),
    ) -> TaskUsage:
        """Price, count and publish one ``task_usage`` (``TaskContext`` calls this)."""
        return self._spending.record_usage(record, model, provider, tokens, reported_usd, parts)

    # -- process groups (suspend mode) -------------------------------------
    def _add_process_group(self, record: TaskRecord, pgid: int) -> None:
        if record.process_groups is None:
            record.process_groups = set()
        record.process_groups.add(pgid)
        if self.suspend_on_pause and self._paused:
            signal_group_logged(pgid, signal.SIGSTOP)

    def _signal_groups(self, signum: signal.Signals) -> None:
        for record in self._registry.live_records():
            if record.state == "running" and record.process_groups:
                for pgid in tuple(record.process_groups):
                    signal_group_logged(pgid, signum)

    # -- helpers -----------------------------------------------------------
    def _publish(self, event: Event) -> None:
        self._publisher.publish(event)

    def _stamp(self, published: Published | None) -> datetime:
        return self._publisher.clock() if published is None else published.time

    def _close(self) -> None:
        """Nothing more starts; workers end once what was started has run."""
        self._closed = True
        self._pool.close()

    def _startup(self, *, start_paused: bool) -> None:
        if self._budget.limit is not None:
            self._publish(BudgetChanged(budget_usd=self._budget.limit, by="startup"))
        if start_paused:
            self.pause(by="startup", reason="started paused")
        else:
            self._unpaused.set()
        self._spending.announce(self._budget.crossings())
