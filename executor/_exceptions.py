"""Exceptions of the executor package; every one is a ``RuncastError``."""

from __future__ import annotations

from events import RuncastError


class ExecutorError(RuncastError):
    """Base of the executor's errors."""


class BudgetExceededError(ExecutorError):
    """Resuming was refused because the spend has reached the budget."""


class UnknownTaskError(ExecutorError, KeyError):
    """No task has the given id."""

    def __str__(self) -> str:
        # KeyError would quote the message; show it as written.
        return str(self.args[0]) if self.args else ""


class InvalidTransitionError(ExecutorError):
    """A task was asked to make a state change its state machine forbids (a bug)."""


class InvalidArgumentError(ExecutorError, ValueError):
    """A value passed to the executor (budget, usage, task option) is out of range."""


class DuplicateTaskError(InvalidArgumentError):
    """A task was submitted with an id that is already in use."""


class ExecutorClosedError(ExecutorError):
    """A task was submitted after the executor's block was left."""


class TaskNotRetriableError(ExecutorError):
    """A retry asked for a task that has not ended, or that completed."""


class TaskFailedError(ExecutorError):
    """Raised by ``TaskHandle.wait()`` when the task ended in ``failed``."""

    def __init__(
        self, task_id: str, error: str, *, exit_code: int | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(f"task {task_id!r} failed: {error}")
        self.task_id = task_id
        self.error = error
        self.exit_code = exit_code
        self.timed_out = timed_out


class TaskCancelledError(ExecutorError):
    """Raised by ``TaskHandle.wait()`` when the task was cancelled."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(f"task {task_id!r} was cancelled: {reason}")
        self.task_id = task_id
        self.reason = reason


class JobFileError(ExecutorError, ValueError):
    """A job file is invalid; the message names the file, line, task and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> None:
        where = path if line is None else f"{path}:{line}"
        subject = ""
        if task is not None:
            subject += f"{task}: "
        if field is not None:
            subject += f"{field}: "
        super().__init__(f"{where}: {subject}{message}")
        self.path = path
        self.line = line
        self.task = task
        self.field = field
