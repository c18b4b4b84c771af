"""The workers that run started tasks' attempts: ``TaskLifecycle``'s worker half.

``TaskLifecycle`` (``_lifecycle``) starts a task and hands it over here; a worker
runs its attempt and gives it back to the lifecycle's ``_end`` or
``_attempt_failed``.  A mixin, not an object of its own, so a task costs no
attribute hop more than when this was one class (bench/HISTORY.md).

Invariants (numbered as in ``_lifecycle``, which holds the others;
tests/executor/test_states.py drives random operations against them all):

5. A running task waits in ``_ready`` for a worker (``scope`` None) or is run
   by one worker (``scope`` the worker's, deadline its start plus its timeout,
   later by what a suspension held: ``_suspension``).
7. At most ``concurrency`` workers exist (once it is lowered, the extra ones end when
   idle), each running attempt after attempt in ONE cancel scope, replaced only
   once cancelled (a cancel or a timeout): a task and a scope per attempt
   would cost as much as a no-op task itself (bench/HISTORY.md, "Long-lived
   workers").  An attempt runs in a copy of its submitter's context variables
   (``_coroutines``); in a task,
   ``trio.lowlevel.current_task()`` is its worker, shared with other tasks.
8. An attempt cancelled while it waits for a worker never runs; a worker
   cancelled from outside (the executor's nursery) ends its task as cancelled,
   and the last one every task still waiting for a worker.
"""

from __future__ import annotations

from collections import deque
from math import inf
from typing import TYPE_CHECKING

import trio

from ._context import TaskContext
from ._coroutines import attempt_of
from ._failures import sole_cause
from ._record import TaskRecord

if TYPE_CHECKING:
    # Only for the type checker: the lifecycle is the ``TaskHost`` a context holds.
    from ._host import TaskHost as _HostBase
    from ._record import EndState
    from ._spending import Spending
else:
    _HostBase = object


class TaskWorkers(_HostBase):
    """Runs started tasks' attempts in long-lived workers; mixed into ``TaskLifecycle``,
    which holds the state below (see the module's invariants)."""

    __slots__ = ()

    if TYPE_CHECKING:
        # ``TaskLifecycle``'s, read and written here.
        _nursery: trio.Nursery
        _spending: Spending
        _ready: deque[TaskRecord]
        _parking: trio.lowlevel.ParkingLot
        _parked: int
        workers: int
        concurrency: int
        closed: bool

        def _end(
            self,
            record: TaskRecord,
            state: EndState,
            *,
            reason: str = "",
            error: BaseException | None = None,
        ) -> None: ...

        def _attempt_failed(self, record: TaskRecord, error: BaseException) -> None: ...

    def _hand_over(self, record: TaskRecord) -> None:
        """Give a started task to a parked worker, a new one, or the next one free.

        When every worker is busy, fewer than ``concurrency`` tasks are
        running, so one of them is about to end and take this one before it parks.
        """
        self._ready.append(record)
        if self._parked:
            self._parked -= 1
            self._parking.unpark()
        elif self.workers < self.concurrency:
            self.workers += 1
            self._nursery.start_soon(self._work, name=f"runcast worker {self.workers}")

    async def _work(self) -> None:
        ready = self._ready
        record: TaskRecord | None = None
        try:
            while True:
                scope = trio.CancelScope()
                with scope:
                    while True:
                        if not ready:
                            if self.closed or self.workers > self.concurrency:
                                return  # (fewer workers since ``set_concurrency``)
                            await self._park()
                            continue
                        record = ready.popleft()
                        if record.cancel_reason is not None:
                            # Cancelled while it waited for a worker: it never runs.
                            self._attempt_cut(record)
                        else:
                            record.scope = scope
                            timeout = record.timeout
                            if timeout is not None:
                                scope.deadline = record.attempt_started + timeout
                            await self._run_attempt(record)
                            if timeout is not None and not scope.cancel_called:
                                scope.deadline = inf
                        record = None
                        if scope.cancel_called:
                            break  # spent: the next attempt gets a fresh scope
                        # A new attempt's first step comes after what is runnable now,
                        # as it would for a newly spawned task.
                        await trio.lowlevel.cancel_shielded_checkpoint()
                if record is not None:
                    # This scope's cancellation (an operator cancel or the timeout)
                    # ended the attempt; the scope caught its ``Cancelled``.
                    self._attempt_cut(record)
                    record = None
        finally:
            self.workers -= 1
            if record is not None:
                # Cancelled from outside (the executor's nursery): nothing runs it now.
                self._attempt_abandoned(record)
            self._drain()

    async def _park(self) -> None:
        self._parked += 1
        try:
            await self._parking.park()
        except BaseException:
            # Cancelled while parked: no ``unpark`` counted it off.
            self._parked -= 1
            raise

    async def _run_attempt(self, record: TaskRecord) -> None:
        """Run one attempt in its worker; ends it unless ``Cancelled`` cuts it short."""
        ctx = TaskContext(self, self._spending, record, record.attempts)
        try:
            result = await attempt_of(record, ctx)
        except Exception as exc:
            if record.cancel_reason is not None:
                self._end(record, "cancelled", reason=record.cancel_reason)
            else:
                # A nursery in the task wraps even a single error in a group: fail
                # with the error itself, so its message (and a timeout) shows.
                self._attempt_failed(record, sole_cause(exc))
            return
        finally:
            ctx.end_attempt()
        if record.cancel_reason is not None:
            self._end(record, "cancelled", reason=record.cancel_reason)
        else:
            record.result = result
            self._end(record, "completed")

    def _attempt_cut(self, record: TaskRecord) -> None:
        """Its worker's scope cut the attempt (or it never ran): ``cancel()`` or the timeout."""
        if record.cancel_reason is not None:
            self._end(record, "cancelled", reason=record.cancel_reason)
        else:
            self._attempt_failed(record, trio.TooSlowError(f"timed out after {record.timeout}s"))

    def _attempt_abandoned(self, record: TaskRecord) -> None:
        """The executor's own nursery is being cancelled (shutdown) under the attempt."""
        if record.state == "running":
            self._end(record, "cancelled", reason=record.cancel_reason or "executor stopped")

    def _drain(self) -> None:
        """A worker cancelled from outside: end what would wait for it for ever."""
        if self.workers == 0:
            while self._ready:
                self._attempt_abandoned(self._ready.popleft())
