"""Argument checks shared by the executor's entry points."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any, Final

from events import MAX_NAME, MAX_TASK_ID

from ._exceptions import DuplicateTaskError, InvalidArgumentError

#: The most tasks ``Executor.set_concurrency`` lets run at once (a worker task each).
MAX_CONCURRENCY: Final = 10_000


def check_number(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value}")


def check_concurrency(concurrency: int) -> int:
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidArgumentError(
            f"concurrency must be an int from 1 to {MAX_CONCURRENCY}, got {concurrency!r}"
        )
    return concurrency


def check_options(concurrency: int, retry_backoff: float, kill_grace: float) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
    check_number("retry_backoff", retry_backoff, allow_zero=True)
    check_number("kill_grace", kill_grace, allow_zero=True)


def check_task_id(task_id: str | None, in_use: Collection[str]) -> str:
    """The given id, checked, or a generated ``task-N`` not yet in use."""
    if task_id is None:
        number = len(in_use) + 1
        while f"task-{number}" in in_use:
            number += 1
        return f"task-{number}"
    if not isinstance(task_id, str) or not task_id or len(task_id) > MAX_TASK_ID:
        raise InvalidArgumentError(
            f"task_id must be a non-empty string of <= {MAX_TASK_ID} chars, got {task_id!r}"
        )
    if task_id == "*":
        raise InvalidArgumentError("task_id '*' is reserved for session events")
    if task_id in in_use:
        raise DuplicateTaskError(f"task_id {task_id!r} is already in use")
    return task_id


def name_problem(value: object) -> str | None:
    """What is wrong with a model or provider name (None: nothing)."""
    if not isinstance(value, str):
        return f"expected a string, got {value!r}"
    if len(value) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, got {len(value)}"
    return None


def check_names(model: object, provider: object) -> None:
    """A task's default model and provider: strings of at most ``MAX_NAME`` characters.

    Every usage event of the task may carry them; one too long would be refused
    by ``task_usage``'s rules only once the task reports usage.
    """
    for field, value in (("model", model), ("provider", provider)):
        if field == "provider" and value is None:
            continue
        problem = name_problem(value)
        if problem is not None:
            raise InvalidArgumentError(f"{field}: {problem}")


def check_submission(
    fn: Callable[..., Any],
    task_id: str | None,
    in_use: Collection[str],
    timeout: float | None,
    retries: int,
    priority: int,
    attempts_used: int,
) -> str:
    """Check ``submit``'s arguments; returns the task id to use."""
    if not callable(fn):
        raise InvalidArgumentError(f"fn must be an async function, got {fn!r}")
    task_id = check_task_id(task_id, in_use)
    if timeout is not None:
        check_number("timeout", timeout)
    # ``type(x) is int`` first: the usual case, and cheaper than two isinstance calls.
    if (type(retries) is not int and _not_int(retries)) or retries < 0:
        raise InvalidArgumentError(f"retries must be an int >= 0, got {retries!r}")
    if type(priority) is not int and _not_int(priority):
        raise InvalidArgumentError(f"priority must be an int, got {priority!r}")
    if (type(attempts_used) is not int and _not_int(attempts_used)) or attempts_used < 0:
        raise InvalidArgumentError(f"attempts_used must be an int >= 0, got {attempts_used!r}")
    return task_id


def _not_int(value: object) -> bool:
    """Not an int (a bool is not one here)."""
    return isinstance(value, bool) or not isinstance(value, int)
