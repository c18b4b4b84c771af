"""``ClusterControls``: the server's operator controls, carried to the session's control stream.

The server drives an ``ExecutorControls`` (``api/server/_interfaces.py``)
synchronously. Here each command is checked at once against what this node
has read of the session (the task table, the aggregate), answered as the
executor would answer it (unknown task, already ended, not retriable, resume
refused while over budget), and then queued, in order, for
:func:`serve_cluster_controls`, which runs it as the ``control`` script (atomic
in Redis: it changes the session's state, tells the workers and appends the
event). A command queued while Redis is away is sent once it is back;
the queue is bounded and a command beyond it is refused with an error that
says so. The script has the last word: a command it refuses (a race with
another node) is logged and counted in ``refused``.

Concurrency is per worker in cluster mode (``runcast worker --concurrency``),
so :meth:`ClusterControls.set_concurrency` refuses with an error that says so.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Final

import attrs
import structlog
import trio

from broadcaster import SessionAggregate
from events import (
    END_STATES,
    BudgetChanged,
    BudgetExhausted,
    BudgetWarning,
    Event,
    EventCodec,
    ExecutorPaused,
    ExecutorResumed,
    TaskCancelled,
    TaskQueued,
    truncate,
)
from executor import RETRIABLE_STATES, TaskInfo, TaskPage

from ._exceptions import ClusterError, ControlRefused
from ._link import ClusterLink
from ._retrying import retry_unavailable
from ._tasks import TaskRow, TaskTable
from ._values import AppendRequest, ControlCommand, ControlResult

log = structlog.get_logger("runcast.cluster")

#: Commands waiting for Redis at most; one more is refused.
MAX_PENDING_COMMANDS: Final = 1000


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.define(eq=False)
class ClusterControls:
    """The operator controls of one cluster session, as a serve node offers them."""

    table: TaskTable
    aggregate: SessionAggregate
    codec: EventCodec = attrs.field(factory=EventCodec)
    clock: Callable[[], datetime] = _now
    #: What an exhausted budget does to running tasks (the session's ``on_budget``).
    on_budget: str = "pause"
    max_pending: int = MAX_PENDING_COMMANDS
    #: This node as a producer of its own events (a budget warning): ``serve:<8 hex>``.
    src: str = attrs.field(factory=lambda: f"serve:{uuid.uuid4().hex[:8]}")
    #: Commands the control script refused after this node had accepted them.
    refused: int = 0
    _src_seq: int = 0
    _send: trio.MemorySendChannel[ControlCommand] = attrs.field(init=False)
    receive: trio.MemoryReceiveChannel[ControlCommand] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self.receive = trio.open_memory_channel[ControlCommand](self.max_pending)

    # -- the controls ------------------------------------------------------------
    def pause(self, *, by: str = "operator", reason: str = "", suspend: bool | None = None) -> None:
        if self.aggregate.is_paused and not suspend:
            return  # as the executor: a second pause changes nothing
        event = ExecutorPaused(by=by, reason=truncate(reason))  # type: ignore[arg-type]
        self._queue(ControlCommand(op="pause", by=by, reason=event.reason, suspend=suspend), event)

    def resume(self, *, by: str = "operator", reason: str = "") -> None:
        aggregate = self.aggregate
        budget = aggregate.budget_usd
        if budget is not None and aggregate.cost_usd >= budget:
            raise ControlRefused(
                f"cannot resume: spent ${aggregate.cost_usd:.4f} of the "
                f"${budget:.4f} budget; raise the budget first"
            )
        if not aggregate.is_paused:
            return
        event = ExecutorResumed(by=by, reason=truncate(reason))  # type: ignore[arg-type]
        self._queue(ControlCommand(op="resume", by=by, reason=event.reason), event)

    def cancel(self, task_id: str, *, reason: str = "cancelled by operator") -> bool:
        """False if the task has ended; the worker running it cancels it."""
        row = self._known(task_id)
        if row is not None and row.state in END_STATES:
            return False
        event = TaskCancelled(task_id=task_id, reason=truncate(reason))
        self._queue(ControlCommand(op="cancel", task_id=task_id, reason=event.reason), event)
        return True

    def retry(self, task_id: str) -> None:
        row = self._known(task_id)
        if row is None:
            raise ClusterError(f"task {task_id!r} has ended and is no longer kept on this node")
        if row.state not in RETRIABLE_STATES:
            raise ClusterError(
                f"task {task_id!r} is {row.state}: only a failed, timed-out or "
                "cancelled task can be retried"
            )
        event = TaskQueued(
            task_id=task_id, name=row.name, attempt=row.last_attempt + 1, priority=row.priority
        )
        self._queue(
            ControlCommand(op="retry", task_id=task_id, reason="retried by operator"), event
        )

    def set_budget(self, usd: float | None, *, by: str = "operator") -> None:
        if usd is not None and (
            isinstance(usd, bool)
            or not isinstance(usd, int | float)
            or not math.isfinite(usd)
            or usd < 0
        ):
            raise ClusterError(f"budget must be a finite number >= 0 or None, got {usd!r}")
        event = BudgetChanged(budget_usd=usd, by=by)  # type: ignore[arg-type]
        self._queue(ControlCommand(op="budget", by=by, budget_usd=usd), event)

    def set_concurrency(self, concurrency: int, *, by: str = "operator", reason: str = "") -> None:
        raise ClusterError(
            "concurrency is per worker in cluster mode: start workers with "
            "`runcast worker --concurrency N` (or more workers)"
        )

    # -- listing (the task table) ------------------------------------------------------
    def tasks(self) -> list[TaskInfo]:
        return self.table.tasks()

    def task_page(
        self, *, after: int | None = None, limit: int, states: Collection[str] | None = None
    ) -> TaskPage:
        return self.table.task_page(after=after, limit=limit, states=states)

    def has_task(self, task_id: str) -> bool:
        return self.table.has_task(task_id)

    @property
    def is_paused(self) -> bool:
        return self.aggregate.is_paused

    # -- queueing ---------------------------------------------------------------------
    def _known(self, task_id: str) -> TaskRow | None:
        if not self.table.has_task(task_id):
            raise ClusterError(f"no task with id {task_id!r}")
        return self.table.row(task_id)

    def _queue(self, command: ControlCommand, event: Event) -> None:
        wire = self.codec.encode(0, self.clock(), event)
        try:
            self._send.send_nowait(attrs.evolve(command, events=(wire,)))
        except trio.WouldBlock:
            raise ClusterError(
                f"{self.max_pending} operator commands are already waiting for Redis; "
                "try again once it is reachable"
            ) from None

    # -- the budget's follow-up --------------------------------------------------------
    def crossing_events(self, result: ControlResult) -> tuple[list[str], ControlCommand | None]:
        """After a budget change that crossed a threshold, what one host publishes then:
        a warning alone is appended as this node's own event; an exhausted budget goes
        with a pause by the budget (every worker hears it), the events in that order."""
        budget = result.budget_usd
        if not result.crossed or budget is None:
            return [], None
        spent = result.spent_usd
        events: list[Event] = []
        if "warning" in result.crossed:
            events.append(BudgetWarning(budget_usd=budget, spent_usd=spent))
        reason = f"budget exhausted: spent ${spent:.4f} of ${budget:.4f}"
        exhausted = "exhausted" in result.crossed
        if exhausted:
            events.append(BudgetExhausted(budget_usd=budget, spent_usd=spent))
            if result.paused:
                events.append(ExecutorPaused(by="budget", reason=reason))
        now = self.clock()
        wires = [self.codec.encode(0, now, event) for event in events]
        if not exhausted:
            return wires, None
        suspend = self.on_budget == "suspend"
        command = ControlCommand(
            op="pause", by="budget", reason=reason, suspend=suspend, events=tuple(wires)
        )
        return [], command

    def own_appends(self, wires: list[str]) -> list[AppendRequest]:
        """Session events this node appends itself (idempotent by ``src``, ``src_seq``)."""
        requests = []
        for wire in wires:
            self._src_seq += 1
            kind = self.codec.decode(wire).event_name
            requests.append(AppendRequest(self.src, self._src_seq, "*", "", kind, None, wire))
        return requests


async def serve_cluster_controls(
    controls: ClusterControls,
    link: ClusterLink,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send the queued commands in order until cancelled, each once Redis takes it."""
    task_status.started()
    async for command in controls.receive:
        result = await retry_unavailable(link.control, command)
        if not result.ok:
            controls.refused += 1
            log.warning(
                "operator command refused",
                op=command.op,
                task_id=command.task_id,
                reason=result.reason,
            )
            continue
        if command.op == "budget":
            wires, pause = controls.crossing_events(result)
            if wires:
                await retry_unavailable(link.append_many, controls.own_appends(wires))
            if pause is not None:
                await retry_unavailable(link.control, pause)
