"""The transitions between task states, who may pause, and the public view of a task.

The states themselves (``TaskState``, ``END_STATES``) and who may pause,
resume or budget (``Actor``) are the event model's: ``events`` is their one home.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast, get_args

import attrs

from events import Actor, TaskState, total_tokens

from ._exceptions import InvalidArgumentError, InvalidTransitionError

# Read from the event model's ``Actor``, so the two cannot disagree.
_ACTORS: frozenset[str] = frozenset(get_args(Actor))

# Every allowed move; anything else is a bug in the executor and raises.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    "queued": frozenset(("running", "cancelled")),
    "running": frozenset(("completed", "failed", "cancelled", "retrying")),
    "retrying": frozenset(("queued", "cancelled")),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}

#: The end states a retry (``Executor.retry``) reopens, back to ``queued``: the one
#: move out of an end state, made by the lifecycle alone and not in ``TRANSITIONS``,
#: whose end states stay final for everything else.
RETRIABLE_STATES: frozenset[TaskState] = frozenset(("failed", "cancelled"))


def check_transition(task_id: str, current: TaskState, target: TaskState) -> None:
    """Raise ``InvalidTransitionError`` unless ``current -> target`` is allowed."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransitionError(f"task {task_id!r}: cannot go from {current!r} to {target!r}")


@attrs.frozen(kw_only=True)
class TaskInfo:
    """A snapshot of one task, as ``Executor.tasks()`` reports it."""

    task_id: str
    name: str
    state: TaskState
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    estimated_cost_usd: float
    error: str | None
    exit_code: int | None
    priority: int = 0
    unpriced_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return total_tokens(self)


def as_actor(by: str) -> Actor:
    """Check who is pausing/resuming/budgeting; a clear error otherwise."""
    if by not in _ACTORS:
        raise InvalidArgumentError(f"by must be one of {sorted(_ACTORS)}, got {by!r}")
    return cast(Actor, by)
