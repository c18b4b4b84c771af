"""Opening an executor: its nursery, and what leaving the block means."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from events import Publisher

from ._budget import Budget, check_spent
from ._checks import check_options
from ._cost import CostCalculator, PriceTable
from ._executor import Executor
from ._registry import DEFAULT_KEEP_FINISHED, TaskRegistry, check_keep_finished


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
    spent_usd: float = 0.0,
    keep_finished: int = DEFAULT_KEEP_FINISHED,
) -> AsyncIterator[Executor]:
    """Open an executor whose tasks run in a nursery this block owns.

    Leaving the block normally waits for every submitted task; leaving it with
    an exception (or cancellation) cancels them all first. ``spent_usd`` is what
    a resumed session had already spent: it counts against the budget at once.
    ``keep_finished`` bounds how many finished tasks ``tasks()`` still lists
    (the newest; older ones are counted in ``Executor.finished_evicted``).
    """
    check_options(concurrency, retry_backoff, kill_grace)
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
            CostCalculator(prices),
            budget,
            registry=registry,
        )
        executor._startup(start_paused=start_paused)
        try:
            yield executor
        except BaseException as exc:
            body_error = exc
            executor._close()  # nothing more starts while we cancel
            executor.cancel_all(reason="executor stopped")
        else:
            try:
                await executor.join()
            except BaseException:
                executor._close()
                executor.cancel_all(reason="executor stopped")
                raise
        finally:
            executor._close()
    if body_error is not None:
        raise body_error
