"""A worker's task events on their way to the session's event stream in Redis.

The local executor publishes; :class:`Forwarder` (a publisher listener) turns each
task event into an ``AppendRequest`` numbered with this worker's ``src_seq`` and
queues it in a bounded buffer; :meth:`Forwarder.serve` appends the buffer in
batches. An append that fails because Redis is unreachable is retried with the
SAME requests (same ``src_seq``: the append script drops what already landed),
with capped backoff, so nothing is counted twice and nothing is lost.

The buffer is bounded twice: accounting events (started, usage, retrying, ends)
up to ``accounting_bound``, output up to ``output_bound``. Output beyond that is
dropped, counted per task, and announced by one ``task_output`` line per task
when that task's next event is queued (or the buffer drains). What does not fit
of the accounting events is counted and logged (``accounting_dropped``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol

import attrs
import structlog
import trio

from events import (
    TASK_END_EVENTS,
    BudgetExhausted,
    BudgetWarning,
    Event,
    EventCodec,
    ExecutorPaused,
    Published,
    TaskOutput,
    TaskUsage,
)

from ._exceptions import RedisUnavailable
from ._retrying import BACKOFF_FIRST, next_delay, retry_unavailable
from ._values import (
    APPEND_DUP,
    APPEND_FENCED,
    APPEND_OK,
    AppendRequest,
    AppendResult,
    ClusterState,
    ControlCommand,
    ControlResult,
)

log = structlog.get_logger("runcast.cluster")

#: The task events a worker appends; ``task_queued`` is submit's and retry's, and
#: executor, budget and concurrency events are the cluster's, not one worker's.
FORWARDED = frozenset(
    ("task_started", "task_usage", "task_output", "task_retrying", *TASK_END_EVENTS)
)
ACCOUNTING_BOUND = 100_000
OUTPUT_BOUND = 10_000
BATCH = 256


class AppendLink(Protocol):
    """What the forwarder needs of a ``ClusterLink``."""

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]: ...
    async def state(self) -> ClusterState: ...
    async def control(self, command: ControlCommand) -> ControlResult: ...


@attrs.frozen
class _Pending:
    request: AppendRequest
    output_lines: int  # 0: an accounting event (or a notice, which no bound holds back)


def _spent_when(crossings: list[AppendResult], line: str) -> float | None:
    """The spend when one of ``crossings`` crossed ``line`` (None: none did)."""
    return next((result.spent_usd for result in crossings if line in result.crossed), None)


def dropped_notice(lines: int) -> str:
    return f"[runcast: {lines} output lines dropped while Redis was unreachable]"


@attrs.define(eq=False)
class Forwarder:
    """Local task events -> bounded buffer -> ``append_many`` (see the module)."""

    link: AppendLink = attrs.field(repr=False)
    instance: str
    accounting_bound: int = ACCOUNTING_BOUND
    output_bound: int = OUTPUT_BOUND
    batch: int = BATCH
    #: Called with the cluster task id once its end event is in the stream (or fenced).
    on_end_appended: Callable[[str], None] = lambda _task_id: None
    codec: EventCodec = attrs.field(factory=EventCodec, repr=False)
    clock: Callable[[], datetime] = attrs.field(default=lambda: datetime.now(UTC), repr=False)
    #: Lease token of each task this worker holds (the append script fences others).
    tokens: dict[str, str] = attrs.field(factory=dict, repr=False)
    #: Local executor id -> the cluster's task id, where they differ.
    cluster_ids: dict[str, str] = attrs.field(factory=dict, repr=False)
    #: Local ids whose end event is not appended: the task was handed back or cut
    #: short by a hard stop, and the next claimer ends its attempt.
    suppressed_ends: set[str] = attrs.field(factory=set, repr=False)
    _buffer: deque[_Pending] = attrs.field(factory=deque, repr=False)
    _next_src_seq: int = 1
    accounting_held: int = 0
    output_held: int = 0
    _dropped_by_task: dict[str, int] = attrs.field(factory=dict, repr=False)
    output_lines_dropped: int = 0
    accounting_dropped: int = 0
    appended: int = 0
    duplicates: int = 0
    fenced: int = 0
    #: The last append failed because Redis was unreachable (cleared by a success).
    unreachable: bool = False
    _wake: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _drained: trio.Event = attrs.field(factory=trio.Event, repr=False)
    #: A budget warning is in the buffer: announcing it again would only be a dup.
    _warning_queued: bool = attrs.field(default=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._drained.set()

    # -- the buffer ------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def backlogged(self) -> bool:
        """Claim nothing new: Redis is unreachable with events waiting, or half full."""
        if self._buffer and self.unreachable:
            return True
        return (
            self.accounting_held * 2 > self.accounting_bound
            or self.output_held * 2 > self.output_bound
        )

    def __call__(self, item: Published) -> None:
        """The publisher listener: queue a task event of this worker's for appending."""
        event = item.event
        if event.event_name not in FORWARDED:
            return
        local_id = event.task_id
        if event.event_name in TASK_END_EVENTS and local_id in self.suppressed_ends:
            self.suppressed_ends.discard(local_id)
            self.cluster_ids.pop(local_id, None)
            return
        cluster_id = self.cluster_ids.get(local_id, local_id)
        if cluster_id != local_id:
            event = attrs.evolve(event, task_id=cluster_id)
            if event.event_name in TASK_END_EVENTS:
                del self.cluster_ids[local_id]
        self.queue(event, item.time)

    def queue(self, event: Event, time: datetime | None = None) -> None:
        """Queue ``event`` (a cluster task id's, or ``"*"``) for appending."""
        lines = event.lines if isinstance(event, TaskOutput) else 0
        task_id = event.task_id
        if lines:
            if self.output_held >= self.output_bound:
                self.output_lines_dropped += lines
                self._dropped_by_task[task_id] = self._dropped_by_task.get(task_id, 0) + lines
                return
        elif self.accounting_held >= self.accounting_bound:
            self.accounting_dropped += 1
            if self.accounting_dropped == 1 or self.accounting_dropped % 1000 == 0:
                log.error(
                    "event buffer full: accounting events dropped",
                    dropped=self.accounting_dropped,
                    bound=self.accounting_bound,
                )
            return
        if task_id in self._dropped_by_task:
            self._queue_notice(task_id)
        self._push(event, time or self.clock(), lines)

    def _queue_notice(self, task_id: str) -> None:
        dropped = self._dropped_by_task.pop(task_id)
        notice = TaskOutput(task_id=task_id, stream="stderr", line=dropped_notice(dropped))
        self._push(notice, self.clock(), 0)

    def _push(self, event: Event, time: datetime, output_lines: int) -> None:
        cost = event.cost_usd if isinstance(event, TaskUsage) else None
        request = AppendRequest(
            src=self.instance,
            src_seq=self._next_src_seq,
            task_id=event.task_id,
            token=self.tokens.get(event.task_id, ""),
            kind=event.event_name,
            cost_usd=cost,
            event_json=self.codec.encode(0, time, event),
        )
        self._next_src_seq += 1
        self._buffer.append(_Pending(request, output_lines))
        if output_lines:
            self.output_held += 1
        else:
            self.accounting_held += 1
        if self._drained.is_set():
            self._drained = trio.Event()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until everything queued so far has been appended."""
        while self._buffer or self._dropped_by_task:
            await self._drained.wait()

    # -- appending -------------------------------------------------------------
    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Append the buffer, batch by batch, for as long as the worker runs."""
        task_status.started()
        while True:
            if not self._buffer:
                self._wake = trio.Event()
                await self._wake.wait()
            batch = list(islice(self._buffer, self.batch))
            results = await self._append(batch)
            for pending in batch:
                self._buffer.popleft()
                if pending.output_lines:
                    self.output_held -= 1
                else:
                    self.accounting_held -= 1
            await self._settle(batch, results)
            if not self._buffer:
                for task_id in list(self._dropped_by_task):
                    self._queue_notice(task_id)
                if not self._buffer:
                    self._drained.set()

    async def _append(self, batch: list[_Pending]) -> list[AppendResult]:
        requests = [pending.request for pending in batch]
        delay = BACKOFF_FIRST
        while True:
            try:
                results = await self.link.append_many(requests)
            except RedisUnavailable as exc:
                if not self.unreachable:
                    log.warning(
                        "Redis unreachable: buffering events", error=str(exc), pending=self.pending
                    )
                self.unreachable = True
                await trio.sleep(delay)
                delay = next_delay(delay)
                continue
            if self.unreachable:
                log.info("Redis reachable again: appending buffered events", pending=self.pending)
            self.unreachable = False
            return results

    async def _settle(self, batch: list[_Pending], results: list[AppendResult]) -> None:
        for pending, result in zip(batch, results, strict=True):
            request = pending.request
            if result.status == APPEND_OK:
                self.appended += 1
            elif result.status == APPEND_DUP:
                self.duplicates += 1
            elif result.status == APPEND_FENCED:
                self.fenced += 1
                log.info(
                    "event fenced: the task's lease is another worker's",
                    task_id=request.task_id,
                    kind=request.kind,
                )
            if request.kind in TASK_END_EVENTS and request.task_id in self.tokens:
                del self.tokens[request.task_id]
                self.on_end_appended(request.task_id)
            if request.kind == "budget_warning":
                self._warning_queued = False
        # A crossing of this batch's, else one whose announcement was lost (the reply
        # to its append, even this worker's own: its resend came back a dup).
        crossings = [result for result in results if result.crossed]
        if crossings or any(result.announce for result in results):
            await self._announce(crossings)

    async def announce_if_pending(self) -> None:
        """Announce a budget crossing nobody announced (its worker's reply was lost, or
        the worker died): the claims call this while idle, as a state read."""
        await self._announce([])

    async def _announce(self, crossings: list[AppendResult]) -> None:
        """Warn, and if the budget is spent pause every worker (the warning first, as on
        one host). ``crossings``: this worker's appends that crossed a line; the state
        says which crossings (anyone's) still wait. The scripts admit each announcement
        once, so several workers announcing the same crossing append it once."""
        state = await retry_unavailable(self.link.state)
        budget = crossings[-1].budget_usd if crossings else state.budget_usd
        if budget is None:
            return
        warned_usd = _spent_when(crossings, "warning")
        spent = _spent_when(crossings, "exhausted")
        warn = warned_usd is not None or state.warning_unannounced
        if warned_usd is None:
            warned_usd = state.warned_usd
        warning = BudgetWarning(budget_usd=budget, spent_usd=warned_usd)
        if spent is None and not state.exhaustion_unannounced:
            if warn and not self._warning_queued:
                self._warning_queued = True
                self.queue(warning)
            return
        spent = state.exhausted_usd if spent is None else spent
        reason = f"budget exhausted: spent ${spent:.4f} of ${budget:.4f}"
        announced: list[Event] = [warning] if warn else []
        announced += [
            BudgetExhausted(budget_usd=budget, spent_usd=spent),
            ExecutorPaused(by="budget", reason=reason),
        ]
        now = self.clock()
        command = ControlCommand(
            op="pause",
            task_id="*",
            by="budget",
            reason=reason,
            suspend=state.on_budget == "suspend",
            events=tuple(self.codec.encode(0, now, event) for event in announced),
        )
        outcome = await retry_unavailable(self.link.control, command)
        log.warning(
            "budget exhausted: pausing every worker",
            spent_usd=spent,
            ok=outcome.ok,
            appended=outcome.seq != 0,
            own_crossing=bool(crossings),
        )
