"""Running a task's coroutine inside its own context variables, in a worker's task.

A worker (``_workers``) runs attempt after attempt in one trio task; each
attempt's coroutine is stepped inside a copy of its submitter's context, so
what one task binds never reaches the next task of the same worker.
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from ._record import TaskRecord


@types.coroutine
def run_in_context(
    context: contextvars.Context, coro: Coroutine[Any, Any, Any]
) -> Generator[Any, Any, Any]:
    """``await coro`` with every step of it run inside ``context``.

    What the coroutine yields (trio's traps) goes to the worker's task unchanged,
    and what trio sends or throws back goes to the coroutine, so it behaves as
    if it were the task's own coroutine, only with its own context variables.
    """
    run = context.run
    send = coro.send
    try:
        step = run(send, None)
        while True:
            try:
                value = yield step
            except BaseException as exc:  # Cancelled, KeyboardInterrupt, GeneratorExit too
                step = run(coro.throw, exc)
            else:
                step = run(send, value)
    except StopIteration as stop:
        return stop.value


async def awaiting(awaitable: Awaitable[Any]) -> Any:
    """A coroutine for anything awaitable (a task function need not be ``async def``)."""
    return await awaitable


def attempt_of(record: TaskRecord, ctx: object) -> Awaitable[Any]:
    """What a worker awaits to run one attempt: ``record``'s function called with
    ``ctx`` and its arguments, in a copy of the context the task was submitted
    in (as a task spawned there would be), whichever task's end started it."""
    fn = record.fn
    context = record.context
    # Only ended tasks let go of these; a started task always has them.
    assert fn is not None
    assert context is not None
    context = context.copy()
    coro = context.run(fn, ctx, *record.args)
    if type(coro) is not types.CoroutineType:  # any awaitable will do
        coro = awaiting(coro)
    return run_in_context(context, coro)
