"""A worker obeys the session's control stream: pause, resume, cancel, budget, new tasks.

Every worker reads every command (no consumer group), from the stream's tail as it
was when the worker read the session's state, so no command between the two is
missed. The claim script refuses to hand out tasks while the session is paused;
what a command does here is to the local executor: a pause stops starting what
it holds (and with ``suspend`` stops running commands), a resume starts them again,
a cancel reaches the task where it runs, and a budget pause with
``on_budget = "cancel"`` cancels what runs, as on one host.
"""

from __future__ import annotations

from typing import Protocol, cast

import attrs
import structlog
import trio

from events import Actor
from executor import Executor

from ._claims import Claims
from ._exceptions import RedisUnavailable
from ._retrying import BACKOFF_FIRST, next_delay
from ._values import ClusterState, ControlEntry

log = structlog.get_logger("runcast.cluster")

ACTORS = frozenset(("operator", "budget", "startup", "system"))
#: How long one read of the control stream blocks (the link caps it at 1000 ms).
BLOCK_MS = 1000


class ControlLink(Protocol):
    async def read_control(self, after: str, *, block_ms: int) -> list[ControlEntry]: ...
    async def control_tail(self) -> str: ...
    async def state(self) -> ClusterState: ...


def _actor(by: str) -> Actor:
    return cast(Actor, by) if by in ACTORS else "operator"


@attrs.define(eq=False)
class ControlFollower:
    """Applies control entries (and the state read at start) to the local executor."""

    link: ControlLink = attrs.field(repr=False)
    executor: Executor = attrs.field(repr=False)
    claims: Claims = attrs.field(repr=False)
    #: Entries applied (a test and the exit log read it).
    applied: int = 0

    def apply_state(self, state: ClusterState) -> None:
        """The session's pause as the state hash says (at start, before the stream)."""
        if state.paused:
            suspend = state.paused_by == "budget" and state.on_budget == "suspend"
            self._pause(_actor(state.paused_by), state.pause_reason, suspend, state.on_budget)
        else:
            self._resume("system", "")

    def apply(self, entry: ControlEntry) -> None:
        self.applied += 1
        op = entry.op
        if op != "tasks":
            log.info("control", op=op, task_id=entry.task_id, by=entry.by, reason=entry.reason)
        if op == "pause":
            self._pause(_actor(entry.by), entry.reason, entry.suspend, entry.on_budget)
        elif op == "resume":
            self._resume(_actor(entry.by), entry.reason)
        elif op == "cancel":
            self._cancel(entry.task_id, entry.reason or "cancelled by operator")
        elif op in ("tasks", "retry", "budget"):
            self.claims.wake()  # new or requeued tasks, or a raised budget's resume to come
        else:
            log.warning("unknown control op ignored", op=op, entry_id=entry.entry_id)

    def _pause(self, by: Actor, reason: str, suspend: bool | None, on_budget: str) -> None:
        self.claims.paused = True
        self.executor.pause(by=by, reason=reason, suspend=suspend)
        if by == "budget" and on_budget == "cancel":
            for held in list(self.claims.held.values()):
                if held.local and self.executor.task(held.local_id).state == "running":
                    self.executor.cancel(held.local_id, reason=f"cancelled by {reason}")

    def _resume(self, by: Actor, reason: str) -> None:
        self.claims.paused = False
        self.executor.resume(by=by, reason=reason)
        self.claims.wake()

    def _cancel(self, task_id: str, reason: str) -> None:
        held = self.claims.held.get(task_id)
        if held is not None and held.local:
            self.executor.cancel(held.local_id, reason=reason)

    async def serve(
        self, after: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the stream after entry id ``after`` for as long as the worker runs."""
        task_status.started()
        delay = BACKOFF_FIRST
        while True:
            try:
                entries = await self.link.read_control(after, block_ms=BLOCK_MS)
            except RedisUnavailable:
                await trio.sleep(delay)
                delay = next_delay(delay)
                continue
            delay = BACKOFF_FIRST
            for entry in entries:
                after = entry.entry_id
                self.apply(entry)
