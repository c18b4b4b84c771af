"""What a task's context and handle ask of the executor: the ``TaskHost`` protocol.

``TaskContext`` (what a running task sees) and ``TaskHandle`` (what ``submit``
returns) hold a ``TaskHost``, never the executor's classes: the lifecycle
(``_lifecycle.TaskLifecycle``) implements it and imports them, and nothing
imports back.  Every member is public and documented here; the counters are
attributes because a task adds to them on its hot paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeAlias

from events import Event

from ._record import TaskRecord

#: Told of each command's process group as it starts (``True``) and once it is
#: gone (``False``), with the task's id and the group's id (``open_executor``'s
#: ``on_process_group``). Called synchronously right after the command started,
#: so it should be quick; what it raises fails the attempt (the group is stopped).
ProcessGroupHook: TypeAlias = Callable[[str, int, bool], None]


class TaskHost(Protocol):
    """The executor's side of a task: publishing, pausing, process groups, cancelling.

    (What a task spends goes to the executor's ``Spending``, a class of its own.)
    """

    #: Output lines cut to fit (a line reader's bound or ``MAX_OUTPUT_LINE``).
    output_lines_truncated: int
    #: Usage records refused for a number out of range (their lines stay output).
    usage_records_refused: int
    #: Model or provider names a task reported that were cut to ``MAX_NAME``.
    names_cut: int

    @property
    def is_paused(self) -> bool:
        """Whether the executor is paused (nothing new starts)."""
        ...

    def publish(self, event: Event) -> None:
        """Publish a task's event (its output) to every listener and subscriber."""

    async def wait_unpaused(self) -> None:
        """Return once the executor is not paused (at once if it is not)."""

    def add_process_group(self, record: TaskRecord, pgid: int) -> None:
        """Remember a group of the task's to stop and continue on pause and resume;
        stopped at once if the executor is paused and suspends."""

    def remove_process_group(self, record: TaskRecord, pgid: int) -> None:
        """The group is gone: nothing of it to stop or continue any more."""

    def cancel(self, task_id: str, *, reason: str) -> bool:
        """Cancel a task that has not ended (``Executor.cancel``); False if it had."""
        ...
