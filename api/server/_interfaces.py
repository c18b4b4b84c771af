"""What the server needs from the executor and the broadcaster, as structural types.

The server depends on these shapes rather than on the concrete classes so it can be
served without an executor (a read-only viewer) and exercised with small fakes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from events import SessionUpdate, Subscription, TokenKinds


class ListedTask(TokenKinds, Protocol):
    """One task as ``/api/tasks`` reports it (``executor.TaskInfo`` has this shape)."""

    @property
    def task_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def estimated_cost_usd(self) -> float | None: ...
    @property
    def unpriced_tokens(self) -> int: ...
    @property
    def error(self) -> str | None: ...
    @property
    def exit_code(self) -> int | None: ...


class TaskPageRows(Protocol):
    """One page of tasks (``executor.TaskPage`` has this shape)."""

    @property
    def tasks(self) -> Sequence[ListedTask]: ...
    @property
    def next_after(self) -> int | None:
        """``after`` for the next page; None when this one is the last."""
        ...


class ExecutorControls(Protocol):
    """The operator controls of ``executor.Executor`` the server drives."""

    def pause(self, *, by: str = ..., reason: str = ..., suspend: bool | None = ...) -> None:
        """``suspend``: stop running commands too (None: the executor's default)."""

    def resume(self, *, by: str = ..., reason: str = ...) -> None: ...
    def cancel(self, task_id: str, *, reason: str = ...) -> bool:
        """False when the task had already ended."""
        ...

    def retry(self, task_id: str) -> object:
        """Queue an ended (failed, timed-out, cancelled) task again; raises a
        ``RuncastError`` saying why not for any other task."""
        ...

    def set_budget(self, usd: float | None, *, by: str = ...) -> None: ...
    def set_concurrency(self, concurrency: int, *, by: str = ..., reason: str = ...) -> None:
        """Running tasks finish when it is lowered; queued ones start when it is raised."""

    def tasks(self) -> Sequence[ListedTask]: ...
    def task_page(
        self, *, after: int | None = ..., limit: int, states: Collection[str] | None = ...
    ) -> TaskPageRows:
        """Up to ``limit`` tasks in submission order after ``after``, at a cost in ``limit``."""
        ...

    def has_task(self, task_id: str) -> bool:
        """Whether the id was ever submitted (``tasks()`` keeps only recent finished ones)."""
        ...

    @property
    def is_paused(self) -> bool: ...


class SessionSource(Protocol):
    """What ``broadcaster.SessionBroadcaster`` offers the server."""

    def snapshot(self) -> SessionUpdate: ...
    def subscribe_session(
        self, *, since: int | None = None, buffer_size: int | None = None
    ) -> Subscription: ...
