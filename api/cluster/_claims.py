"""A worker's claims: taking tasks from the session, renewing their leases, handing back.

:meth:`Claims.serve_claims` claims as many tasks as the local executor has free
slots whenever it is woken (new tasks, a resume, a task ending here) and every
second, unless the cluster is paused, the worker is stopping or its event buffer
is backlogged. :meth:`Claims.serve_renewals` renews every lease each third of
the lease time; a lease another worker took over is cancelled here (its late
events are fenced by the append script anyway).

A task reclaimed from a worker that stopped renewing (``reclaimed_from``) first
has its interrupted attempt ended, under the rules of a resumed single-host run:
it counts against the task's retries (``task_retrying``), or fails the task when
none are left (``task_failed``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Protocol

import attrs
import structlog
import trio

from events import MAX_TASK_ID, TASK_END_EVENTS, Published, TaskFailed, TaskRetrying
from executor import CommandSpec, Executor

from ._exceptions import RedisUnavailable
from ._forwarder import Forwarder
from ._retrying import retry_unavailable
from ._values import Claim

log = structlog.get_logger("runcast.cluster")

#: Seconds between claims when nothing wakes the claimer.
CLAIM_EVERY = 1.0
#: Seconds between idle checks for a budget crossing nobody announced.
ANNOUNCE_CHECK_EVERY = 5.0


class ClaimLink(Protocol):
    """What the claims need of a ``ClusterLink``."""

    async def claim(self, instance: str, max_n: int, lease_ms: int) -> list[Claim]: ...
    async def renew(self, instance: str, task_ids: Sequence[str], lease_ms: int) -> list[str]: ...
    async def release(self, instance: str, task_ids: Sequence[str]) -> None: ...
    async def spec(self, task_id: str) -> CommandSpec: ...


def interrupted_error(holder: str) -> str:
    return f"interrupted: worker {holder} stopped renewing its lease"


@attrs.define(eq=False)
class HeldTask:
    """A task whose lease this worker holds, until its end event is appended."""

    task_id: str
    local_id: str
    token: str
    #: Running (or queued, retrying) in the local executor; False once it ended here.
    local: bool = True


@attrs.define(eq=False)
class Claims:
    """See the module docstring."""

    link: ClaimLink = attrs.field(repr=False)
    instance: str
    executor: Executor = attrs.field(repr=False)
    forwarder: Forwarder = attrs.field(repr=False)
    lease_ms: int
    #: The cluster's pause as this worker last heard it (state, then the control stream).
    paused: bool = False
    #: False once the worker stops: nothing more is claimed.
    claiming: bool = True
    held: dict[str, HeldTask] = attrs.field(factory=dict)
    _by_local: dict[str, HeldTask] = attrs.field(factory=dict, repr=False)
    #: Tasks held that run (or wait to) in the local executor.
    local_active: int = 0
    reclaimed: int = 0
    #: Successful claim calls that found nothing to take.
    empty_claims: int = 0
    _announce_checked_at: float = attrs.field(default=-math.inf, repr=False)
    _rerun_ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), repr=False)
    _wake: trio.Event = attrs.field(factory=trio.Event, repr=False)
    changed: trio.Event = attrs.field(factory=trio.Event, repr=False)

    def __attrs_post_init__(self) -> None:
        self.forwarder.on_end_appended = self.on_end_appended

    @property
    def free_slots(self) -> int:
        return max(0, self.executor.concurrency - self.local_active)

    def wake(self) -> None:
        self._wake.set()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # -- the local executor's events and the appender's ---------------------------
    def on_event(self, item: Published) -> None:
        """Publisher listener: a task ended here frees its slot."""
        if item.event.event_name not in TASK_END_EVENTS:
            return
        held = self._by_local.pop(item.event.task_id, None)
        if held is not None and held.local:
            held.local = False
            self.local_active -= 1
            self.wake()
            self._changed()

    def on_end_appended(self, task_id: str) -> None:
        """The task's end is in the stream: its lease is gone, renew it no more."""
        held = self.held.get(task_id)
        if held is not None and not held.local:
            del self.held[task_id]
            self._changed()

    # -- claiming ------------------------------------------------------------------
    async def serve_claims(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while self.claiming:
            with trio.move_on_after(CLAIM_EVERY):
                await self._wake.wait()
            self._wake = trio.Event()
            free = self.free_slots
            if not self.claiming or self.paused or free == 0 or self.forwarder.backlogged:
                continue
            try:
                claims = await self.link.claim(self.instance, free, self.lease_ms)
            except RedisUnavailable:
                continue  # counted by the link; the next round tries again
            if not claims:
                self.empty_claims += 1
                self._changed()
                await self._check_announcements()
            for claim in claims:
                await self._take(claim)

    async def _check_announcements(self) -> None:
        """Nothing to claim: perhaps the budget paused the session and the worker whose
        append crossed it died before announcing (no appends of ours would tell us)."""
        now = trio.current_time()
        if now - self._announce_checked_at >= ANNOUNCE_CHECK_EVERY:
            self._announce_checked_at = now
            await self.forwarder.announce_if_pending()

    async def _take(self, claim: Claim) -> None:
        task_id = claim.task_id
        held = HeldTask(task_id, self._local_id(task_id), claim.token)
        self.held[task_id] = held
        self.forwarder.tokens[task_id] = claim.token
        spec = await retry_unavailable(self.link.spec, task_id)
        attempts = claim.attempts
        if claim.reclaimed_from and attempts >= 1:
            self.reclaimed += 1
            error = interrupted_error(claim.reclaimed_from)
            log.warning(
                "task reclaimed", task_id=task_id, attempt=attempts, previous=claim.reclaimed_from
            )
            if attempts > spec.retries:
                held.local = False  # ended here and now, never run
                self.forwarder.queue(TaskFailed(task_id=task_id, attempt=attempts, error=error))
                self._changed()
                return
            self.forwarder.queue(TaskRetrying(task_id=task_id, attempt=attempts, error=error))
        if held.local_id != task_id:
            self.forwarder.cluster_ids[held.local_id] = task_id
        self._by_local[held.local_id] = held
        self.local_active += 1
        self._changed()
        self.executor.submit_command(attrs.evolve(spec, id=held.local_id), attempts_used=attempts)

    def _local_id(self, task_id: str) -> str:
        """The task's id in the local executor: its own, unless this executor ran it before
        (a retried task, a lease lost and won back), which needs a fresh one."""
        local_id = task_id
        while self.executor.has_task(local_id):
            local_id = f"{task_id}~{next(self._rerun_ids)}"
            if len(local_id) > MAX_TASK_ID:
                local_id = f"~rerun-{next(self._rerun_ids)}"
        return local_id

    # -- renewing --------------------------------------------------------------------
    async def serve_renewals(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Renew leases (and the heartbeat) each third of the lease, for as long as it runs."""
        task_status.started()
        while True:
            await self.renew_once()
            await trio.sleep(self.lease_ms / 3000)

    async def renew_once(self) -> None:
        try:
            lost = await self.link.renew(self.instance, list(self.held), self.lease_ms)
        except RedisUnavailable:
            return  # counted by the link; leases outlive a short outage
        for task_id in lost:
            self._lost(task_id)

    def _lost(self, task_id: str) -> None:
        held = self.held.pop(task_id, None)
        if held is None:
            return
        self.forwarder.tokens.pop(task_id, None)
        if held.local:
            log.warning("lease lost: cancelling the task here", task_id=task_id)
            self.executor.cancel(held.local_id, reason="lease lost")
        self._changed()

    # -- stopping ----------------------------------------------------------------------
    async def hand_back_waiting(self) -> list[str]:
        """Stop claiming; hand back the tasks that wait here (queued or between retries)
        without ending them: the next claim, anyone's, takes them at once."""
        self.claiming = False
        self.wake()
        waiting = [
            held
            for held in self.held.values()
            if held.local and self.executor.task(held.local_id).state in ("queued", "retrying")
        ]
        for held in waiting:
            self.forwarder.suppressed_ends.add(held.local_id)
            self.executor.cancel(held.local_id, reason="handed back: the worker is stopping")
            del self.held[held.task_id]
            self.forwarder.tokens.pop(held.task_id, None)
        ids = [held.task_id for held in waiting]
        if ids:
            await retry_unavailable(self.link.release, self.instance, ids)
        return ids

    def abandon_running(self) -> int:
        """A hard stop: cancel what runs here without ending it in the session; the next
        claimer, once the leases expire, ends each attempt as interrupted."""
        self.claiming = False
        self.wake()
        cancelled = 0
        for held in list(self.held.values()):
            if held.local:
                self.forwarder.suppressed_ends.add(held.local_id)
                cancelled += self.executor.cancel(held.local_id, reason="worker stopped")
                del self.held[held.task_id]  # not renewed: the lease expires
        return cancelled
