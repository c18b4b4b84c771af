"""The executor's public face: submitting, operator controls, budget and queries.

``open_executor`` opens one in a nursery of its own; what happens to a task
after ``submit`` (queue, start, workers, retries, end) is the lifecycle's
(``_lifecycle``, whose invariants say what always holds).  Every state change
happens synchronously, then its event is published; so ``tasks()``,
``is_paused`` and the event stream always agree with each other.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio

from events import (
    BudgetChanged,
    ConcurrencyChanged,
    ExecutorPaused,
    ExecutorResumed,
    Publisher,
    truncate,
)

from ._checks import check_concurrency, check_names, check_options, check_submission
from ._context import TaskContext
from ._exceptions import BudgetExceededError, ExecutorClosedError, InvalidArgumentError
from ._handle import TaskHandle
from ._host import ProcessGroupHook
from ._lifecycle import TaskLifecycle
from ._record import TaskFunction, TaskRecord
from ._registry import DEFAULT_KEEP_FINISHED, TaskPage, TaskRegistry, check_keep_finished
from ._spending import Spending
from ._states import TaskInfo, as_actor
from ._suspension import ON_BUDGET, OnBudget
from .pricing import Budget, CostCalculator, PriceTable, check_budget, check_spent
from .process import CommandSpec, run_command

log = structlog.get_logger("runcast.executor")


@attrs.define(eq=False)
class Executor:
    """Runs submitted tasks in its nursery; open it with :func:`open_executor`."""

    _publisher: Publisher = attrs.field(repr=False)
    _nursery: trio.Nursery = attrs.field(repr=False)
    concurrency: int
    retry_backoff: float
    kill_grace: float
    suspend_on_pause: bool
    on_budget: OnBudget
    _costs: CostCalculator = attrs.field(repr=False)
    _budget: Budget
    _registry: TaskRegistry = attrs.field(factory=TaskRegistry, repr=False)
    _submitted: int = 0
    _on_process_group: ProcessGroupHook | None = attrs.field(default=None, repr=False)
    _lifecycle: TaskLifecycle = attrs.field(init=False, repr=False)
    _spending: Spending = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._spending = Spending(
            self._publisher.publish, self._budget_exhausted, self._costs, self._budget
        )
        self._lifecycle = TaskLifecycle(
            self._publisher,
            self._nursery,
            self._registry,
            self._spending,
            self.concurrency,
            self.retry_backoff,
            on_process_group=self._on_process_group,
        )

    # -- properties and queries ----------------------------------------------
    @property
    def is_paused(self) -> bool:
        return self._lifecycle.is_paused

    @property
    def is_suspended(self) -> bool:
        """Whether the pause stopped running commands (they continue on resume)."""
        return self._lifecycle.suspension.active

    @property
    def budget_usd(self) -> float | None:
        return self._budget.limit

    @property
    def spent_usd(self) -> float:
        """USD of all priced usage so far (unpriced usage adds nothing)."""
        return self._budget.spent

    @property
    def running_count(self) -> int:
        return self._lifecycle.running

    @property
    def waiting_count(self) -> int:
        """Tasks queued or waiting out a retry back-off."""
        return self._lifecycle.active - self._lifecycle.running

    @property
    def publisher(self) -> Publisher:
        return self._publisher

    @property
    def output_lines_truncated(self) -> int:
        """Output lines cut to fit (a line reader's bound or ``MAX_OUTPUT_LINE``)."""
        return self._lifecycle.output_lines_truncated

    @property
    def usage_records_refused(self) -> int:
        """Usage records refused for a number out of range (their lines stay output)."""
        return self._lifecycle.usage_records_refused

    @property
    def names_cut(self) -> int:
        """Model or provider names a task reported that were cut to ``MAX_NAME``."""
        return self._lifecycle.names_cut

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

    async def join(self) -> None:
        """Wait until no task is queued, running or waiting to retry."""
        await self._lifecycle.join()

    # -- submitting ----------------------------------------------------------
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
        lifecycle = self._lifecycle
        if lifecycle.closed:
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
        lifecycle.submit(record)
        return TaskHandle(lifecycle, record)

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

    # -- operator controls ---------------------------------------------------
    def cancel(self, task_id: str, *, reason: str = "cancelled by operator") -> bool:
        """Cancel a queued, retrying or running task; False if it had already ended.

        A running task is cancelled where it is (a subprocess gets SIGTERM, then
        SIGKILL after ``kill_grace``); it reaches ``cancelled`` once it is gone.
        """
        return self._lifecycle.cancel(task_id, reason=reason)

    def retry(self, task_id: str) -> TaskHandle:
        """Run a failed, timed-out or cancelled task again: a new attempt, numbered on.

        It is queued again (``task_queued`` with the next attempt); its usage and
        cost carry on. ``TaskNotRetriableError`` if it has not ended or completed,
        ``UnknownTaskError`` if it is unknown or no longer kept.
        """
        lifecycle = self._lifecycle
        if lifecycle.closed:
            raise ExecutorClosedError("the executor is closed; tasks can no longer be retried")
        record = self._registry.reopen(task_id)
        lifecycle.requeue(record)
        return TaskHandle(lifecycle, record)

    def set_concurrency(self, concurrency: int, *, by: str = "operator", reason: str = "") -> None:
        """Let ``concurrency`` tasks (1 to ``MAX_CONCURRENCY``) run at once from now on.

        Raising it starts queued tasks at once; lowering it cancels nothing: running
        tasks finish, and no new one starts until fewer than ``concurrency`` run.
        Announced by ``concurrency_changed`` (nothing if unchanged).
        """
        check_concurrency(concurrency)
        actor = as_actor(by)
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a string, got {reason!r}")
        previous = self.concurrency
        if concurrency == previous:
            return
        self.concurrency = concurrency
        self._publisher.publish(
            ConcurrencyChanged(
                concurrency=concurrency, previous=previous, by=actor, reason=truncate(reason)
            )
        )
        self._lifecycle.set_concurrency(concurrency)

    def cancel_all(self, *, reason: str = "cancelled by operator") -> int:
        """Cancel every task that has not ended; returns how many were cancelled."""
        return sum(self.cancel(task_id, reason=reason) for task_id in list(self._registry.live))

    def pause(self, *, by: str = "operator", reason: str = "", suspend: bool | None = None) -> None:
        """Stop starting queued tasks; idempotent (a second pause publishes nothing).

        ``suspend`` (None: ``suspend_on_pause``) also SIGSTOPs running commands'
        process groups until resume, their timeouts held meanwhile; a second
        pause that suspends stops them too.  Coroutine tasks run on to their
        next ``ctx.wait_if_paused()``.
        """
        if suspend is None:
            suspend = self.suspend_on_pause
        elif not isinstance(suspend, bool):
            raise InvalidArgumentError(f"suspend must be a bool or None, got {suspend!r}")
        event = ExecutorPaused(by=as_actor(by), reason=truncate(reason))
        self._lifecycle.pause(event, suspend=suspend)

    def _budget_exhausted(self, *, by: str, reason: str) -> None:
        """The budget is spent: pause, and suspend or cancel what runs (``on_budget``)."""
        was_paused = self.is_paused
        self.pause(by=by, reason=reason, suspend=self.on_budget == "suspend")
        cancelled = 0
        if self.on_budget == "cancel":
            for record in list(self._registry.live.values()):
                if record.state == "running":
                    cancelled += self.cancel(record.task_id, reason=f"cancelled by {reason}")
        if not was_paused or cancelled:
            log.warning(
                "executor paused itself",
                by=by,
                reason=reason,
                on_budget=self.on_budget,
                tasks_cancelled=cancelled,
            )

    def resume(self, *, by: str = "operator", reason: str = "") -> None:
        """Start queued tasks again; refused while the spend has reached the budget."""
        event = ExecutorResumed(by=as_actor(by), reason=truncate(reason))
        if self._budget.exceeded:
            raise BudgetExceededError(
                f"cannot resume: spent ${self._budget.spent:.4f} of the "
                f"${self._budget.limit:.4f} budget; raise the budget first"
            )
        self._lifecycle.resume(event)

    def set_budget(self, usd: float | None, *, by: str = "operator") -> None:
        """Change (or with None remove) the budget; publishes ``budget_changed``.

        Raising the budget does not resume a budget pause: that is a separate
        operator decision.  Lowering it below the spend pauses at once.
        """
        usd = check_budget(usd)
        self._spending.set_limit(usd, as_actor(by))

    # -- opening and closing -------------------------------------------------
    def _startup(self, *, start_paused: bool) -> None:
        if self._budget.limit is not None:
            self._publisher.publish(BudgetChanged(budget_usd=self._budget.limit, by="startup"))
        if start_paused:
            self.pause(by="startup", reason="started paused")
        self._spending.announce(self._budget.crossings())

    def _close(self) -> None:
        """Nothing more starts; workers end once what was started has run."""
        self._lifecycle.close()

    def _stop(self) -> None:
        """Nothing more starts, and every task not ended is cancelled."""
        self._close()
        self.cancel_all(reason="executor stopped")

    async def _finish(self) -> None:
        """Wait for every task (the block was left normally); cut short, stop them all."""
        try:
            await self.join()
        except BaseException:
            self._stop()
            raise


@asynccontextmanager
async def open_executor(
    publisher: Publisher,
    *,
    concurrency: int = 4,
    budget_usd: float | None = None,
    prices: PriceTable | None = None,
    start_paused: bool = False,
    retry_backoff: float = 1.0,
    kill_grace: float = 5.0,
    suspend_on_pause: bool = False,
    on_budget: OnBudget = "pause",
    spent_usd: float = 0.0,
    keep_finished: int = DEFAULT_KEEP_FINISHED,
    on_process_group: ProcessGroupHook | None = None,
) -> AsyncIterator[Executor]:
    """Open an executor whose tasks run in a nursery this block owns.

    Leaving the block normally waits for every submitted task; leaving it with
    an exception (or cancellation) cancels them all first. ``spent_usd`` is what
    a resumed session had already spent: it counts against the budget at once.
    ``keep_finished`` bounds how many finished tasks ``tasks()`` still lists
    (the newest; older ones are counted in ``Executor.finished_evicted``).
    ``on_budget`` (``ON_BUDGET``) is what an exhausted budget does to running
    tasks; ``suspend_on_pause`` makes an operator's pause suspend by default.
    ``on_process_group`` is told of each command's process group as it starts
    and ends (``ProcessGroupHook``), e.g. to keep a record by which another
    process can stop them if this one is killed.
    """
    check_options(concurrency, retry_backoff, kill_grace)
    if on_process_group is not None and not callable(on_process_group):
        raise InvalidArgumentError(f"on_process_group must be callable, got {on_process_group!r}")
    if on_budget not in ON_BUDGET:
        raise InvalidArgumentError(f"on_budget must be one of {list(ON_BUDGET)}, got {on_budget!r}")
    registry = TaskRegistry(check_keep_finished(keep_finished))
    budget = Budget(budget_usd, spent=check_spent(spent_usd))
    # The body's own error is re-raised outside the nursery so callers see it
    # as raised, not wrapped in an ExceptionGroup by the nursery.
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        executor = Executor(
            publisher,
            nursery,
            concurrency,
            retry_backoff,
            kill_grace,
            suspend_on_pause,
            on_budget,
            CostCalculator(prices),
            budget,
            registry=registry,
            on_process_group=on_process_group,
        )
        executor._startup(start_paused=start_paused)
        try:
            yield executor
        except BaseException as exc:
            body_error = exc
            executor._stop()
        else:
            await executor._finish()
        finally:
            executor._close()
    if body_error is not None:
        raise body_error
