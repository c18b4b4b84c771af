"""Suspending running commands: their process groups stopped, their timeouts held.

A pause that suspends (an operator's ``pause(suspend=True)``, ``suspend_on_pause``,
or a budget with ``on_budget="suspend"``) SIGSTOPs the process group of every
running command, and of every command that starts a group while it lasts; resume
SIGCONTs them.  A stopped command spends nothing, so its timeout does not run
either: its deadline is held when it is stopped and set again, to the time it had
left, when it is continued.  A coroutine task cannot be stopped: it runs on and
stops at its next ``ctx.wait_if_paused()``.
"""

from __future__ import annotations

import signal
from math import inf
from typing import Final, Literal

import attrs
import trio

from ._record import TaskRecord
from ._registry import TaskRegistry
from .process import signal_group_logged

#: What an exhausted budget does to the tasks running then: ``pause`` lets them
#: run on, ``suspend`` stops running commands until resume, ``cancel`` cancels
#: every running task.  New starts stop in all three.
OnBudget = Literal["pause", "suspend", "cancel"]
ON_BUDGET: Final[tuple[OnBudget, ...]] = ("pause", "suspend", "cancel")


@attrs.define(eq=False)
class Suspension:
    """Which groups are stopped, and what each stopped attempt had left of its timeout."""

    _registry: TaskRegistry = attrs.field(repr=False)
    _clock: trio.abc.Clock = attrs.field(repr=False)
    #: Set while a pause suspends: new process groups are stopped as they come.
    active: bool = False
    #: Task id -> (attempt, seconds of its timeout left when stopped; None: none):
    #: the attempts whose timeout is held.  At most one entry per running task; an
    #: ended task's goes at ``forget`` (a plain dict: the lifecycle checks it as
    #: every task ends).
    held: dict[str, tuple[int, float | None]] = attrs.field(factory=dict, repr=False)

    def stop_all(self) -> None:
        """Stop every running command's groups; new groups are stopped until ``continue_all``."""
        self.active = True
        for record in self._registry.live.values():
            if record.state == "running" and record.process_groups:
                for pgid in tuple(record.process_groups):
                    self.stop_group(record, pgid)

    def stop_group(self, record: TaskRecord, pgid: int) -> None:
        """Stop one group of ``record``'s, holding its timeout (once per attempt)."""
        signal_group_logged(pgid, signal.SIGSTOP)
        if record.task_id in self.held:
            return
        left: float | None = None
        scope = record.scope
        if scope is not None and scope.deadline != inf:
            left = max(0.0, scope.deadline - self._clock.current_time())
            scope.deadline = inf
        self.held[record.task_id] = (record.attempts, left)

    def continue_all(self) -> None:
        """Continue every stopped group, and give each attempt the timeout it had left."""
        self.active = False
        for record in self._registry.live.values():
            if record.state == "running" and record.process_groups:
                for pgid in tuple(record.process_groups):
                    signal_group_logged(pgid, signal.SIGCONT)
        held, self.held = self.held, {}
        now = self._clock.current_time()
        for task_id, (attempt, left) in held.items():
            stopped = self._registry.live.get(task_id)
            if left is None or stopped is None or stopped.state != "running":
                continue
            if stopped.attempts == attempt and stopped.scope is not None:
                stopped.scope.deadline = now + left

    def forget(self, task_id: str) -> None:
        """The task ended: nothing of it to continue."""
        self.held.pop(task_id, None)
