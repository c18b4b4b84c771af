"""What ``Executor.submit`` returns: a task's id and state, its outcome, and a way to cancel it."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from events import END_STATES, TaskState

from ._exceptions import TaskCancelledError, TaskFailedError
from ._host import TaskHost
from ._record import TaskRecord
from ._states import TaskInfo


@attrs.frozen(eq=False)
class TaskHandle:
    """What ``submit`` returns: await the outcome or cancel the task."""

    _host: TaskHost
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
        if record.state in END_STATES:
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
        return self._host.cancel(self.task_id, reason=reason)
