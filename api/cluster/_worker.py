"""``runcast worker``: claim a session's tasks, run them here, append their events.

How the parts fit (each a task in the worker's nursery)::

    Claims.serve_claims ──claim──▶ Executor (local, no budget) ──events──▶ Publisher
         ▲   Claims.serve_renewals (leases, heartbeat)                        │
         │                                                      Forwarder (listener)
    ControlFollower ◀── control stream                                       │ bounded buffer
         (pause, resume, cancel, new tasks)                     Forwarder.serve ──▶ events stream

A worker's commands are recorded in its ledger (``_ledger``), and every worker
reaps the commands of dead workers on this host before it claims anything and
every few seconds after (``_orphans``).

The local executor never accounts the budget: the append script does, across
all workers. Stopping (:meth:`Worker.stop`): nothing more is claimed, tasks
waiting here are handed back, running ones finish, their events are appended,
then the worker leaves. :meth:`Worker.abort` (a second signal) cancels what runs
without ending it in the session: once its lease expires, the next claimer ends
the attempt as interrupted.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import structlog
import trio

from events import Publisher
from executor import (
    Executor,
    PriceTable,
    PriceTableError,
    ProcessGroupHook,
    open_executor,
    parse_price_table,
)

from ._claims import Claims
from ._control_follower import ControlFollower
from ._exceptions import ClusterError
from ._forwarder import Forwarder
from ._ledger import default_state_dir
from ._link import ClusterLink
from ._orphans import REAP_EVERY, OrphanGuard, open_orphan_guard
from ._retrying import retry_unavailable

log = structlog.get_logger("runcast.cluster")

DEFAULT_LEASE_SECONDS = 30.0
#: After a hard stop, how long the events of the cancelled attempts may take to append.
ABORT_FLUSH_SECONDS = 5.0


def worker_instance(name: str) -> str:
    """This process's id in the session: its name and a random part (names may repeat)."""
    return f"w:{name}:{secrets.token_hex(4)}"


def session_prices(text: str) -> PriceTable | None:
    """The price table submit stored in the session ("" for none)."""
    if not text:
        return None
    try:
        return parse_price_table(tomllib.loads(text), source="the session's price table")
    except (tomllib.TOMLDecodeError, PriceTableError) as exc:
        raise ClusterError(f"the session's price table: {exc}") from exc


@attrs.define(eq=False)
class Worker:
    """A running worker (``serve_worker`` hands it over once started)."""

    instance: str
    executor: Executor = attrs.field(repr=False)
    forwarder: Forwarder = attrs.field(repr=False)
    claims: Claims = attrs.field(repr=False)
    control: ControlFollower = attrs.field(repr=False)
    #: Its ledger and the reaper of dead workers' commands (None: no ``/proc`` here).
    orphans: OrphanGuard | None = attrs.field(default=None, repr=False)
    _stopping: trio.Event = attrs.field(factory=trio.Event, repr=False)
    #: Set by :meth:`abort`.
    aborted: trio.Event = attrs.field(factory=trio.Event, repr=False)

    def stop(self) -> None:
        """Stop gracefully: claim nothing more, hand back waiting tasks, finish running ones."""
        self._stopping.set()

    def abort(self) -> None:
        """Stop now: cancel running tasks, leaving their attempts to the next claimer."""
        self.aborted.set()
        self._stopping.set()
        cancelled = self.claims.abandon_running()
        log.warning("stopping at once: running tasks cancelled", tasks=cancelled)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()


async def _until_stopped_or_idle(worker: Worker, link: ClusterLink, exit_when_idle: bool) -> None:
    """Return once stopping, or (``exit_when_idle``) once the session has nothing for us."""
    if not exit_when_idle:
        await worker._stopping.wait()
        return
    claims = worker.claims
    async with trio.open_nursery() as nursery:

        async def on_stop() -> None:
            await worker._stopping.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_stop)
        while True:
            await claims.changed.wait()
            if claims.held or worker.forwarder.pending or claims.paused:
                continue
            state = await retry_unavailable(link.state)
            if not state.paused and state.open_tasks == 0:
                nursery.cancel_scope.cancel()
                return


async def _flush(worker: Worker) -> None:
    """Wait until every event is appended; after an abort, for ``ABORT_FLUSH_SECONDS`` at most."""
    async with trio.open_nursery() as nursery:

        async def drained() -> None:
            await worker.forwarder.drained()
            nursery.cancel_scope.cancel()

        async def deadline() -> None:
            await worker.aborted.wait()
            await trio.sleep(ABORT_FLUSH_SECONDS)
            log.error("events not appended at exit", pending=worker.forwarder.pending)
            nursery.cancel_scope.cancel()

        nursery.start_soon(drained)
        nursery.start_soon(deadline)


@asynccontextmanager
async def _guarded(instance: str, directory: Path | None) -> AsyncIterator[OrphanGuard | None]:
    """This worker's ledger, from before its first command to after its last."""
    orphans = open_orphan_guard(directory or default_state_dir(os.environ), instance)
    try:
        yield orphans
    finally:
        if orphans is not None:
            orphans.ledger.close()


def _ledger_hook(orphans: OrphanGuard | None, forwarder: Forwarder) -> ProcessGroupHook | None:
    """The executor's ``on_process_group``: the ledger records groups by cluster task id."""
    if orphans is None:
        return None
    ledger = orphans.ledger

    def on_process_group(local_id: str, pgid: int, started: bool) -> None:
        task_id = forwarder.cluster_ids.get(local_id, local_id)
        ledger.on_process_group(task_id, pgid, started)

    return on_process_group


@asynccontextmanager
async def _started(
    link: ClusterLink,
    name: str,
    concurrency: int,
    lease_seconds: float,
    directory: Path | None,
) -> AsyncIterator[Worker]:
    instance = worker_instance(name)
    lease_ms = max(1, round(lease_seconds * 1000))
    tail = await retry_unavailable(link.control_tail)
    state = await retry_unavailable(link.state)
    publisher = Publisher()
    forwarder = Forwarder(link, instance)
    async with (
        _guarded(instance, directory) as orphans,
        trio.open_nursery() as nursery,
        open_executor(
            publisher,
            concurrency=concurrency,
            prices=session_prices(state.prices),
            on_process_group=_ledger_hook(orphans, forwarder),
        ) as executor,
    ):
        if orphans is not None:  # dead workers' commands go before their tasks run again
            await nursery.start(orphans.reaper.serve, min(REAP_EVERY, lease_seconds / 3))
            await nursery.start(orphans.ledger.serve_writes)
        claims = Claims(link, instance, executor, forwarder, lease_ms)
        control = ControlFollower(link, executor, claims)
        publisher.add_listener(forwarder)
        publisher.add_listener(claims.on_event)
        control.apply_state(state)
        worker = Worker(instance, executor, forwarder, claims, control, orphans)
        await nursery.start(forwarder.serve)
        await nursery.start(claims.serve_renewals)
        await nursery.start(control.serve, tail)
        await nursery.start(claims.serve_claims)
        log.info(
            "worker started",
            instance=instance,
            session=link.keys.name,
            concurrency=concurrency,
            lease_seconds=lease_seconds,
        )
        try:
            yield worker
        finally:
            nursery.cancel_scope.cancel()


async def serve_worker(
    link: ClusterLink,
    *,
    name: str,
    concurrency: int = 4,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    exit_when_idle: bool = False,
    state_dir: Path | None = None,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> Worker:
    """Run a worker on ``link``'s session until it is stopped (or idle); returns it.

    ``state_dir`` holds the workers' ledgers (None: ``$RUNCAST_STATE_DIR``, else
    ``$XDG_RUNTIME_DIR/runcast``, else ``/tmp/runcast-<uid>``).
    """
    async with _started(link, name, concurrency, lease_seconds, state_dir) as worker:
        task_status.started(worker)
        await _until_stopped_or_idle(worker, link, exit_when_idle)
        worker.claims.claiming = False
        if not worker.aborted.is_set():
            handed_back = await worker.claims.hand_back_waiting()
            if handed_back:
                log.info("handed back waiting tasks", tasks=handed_back)
        await worker.executor.join()
        await _flush(worker)
        with trio.move_on_after(ABORT_FLUSH_SECONDS):
            await retry_unavailable(link.forget_worker, worker.instance)
    _log_exit(worker, link)
    return worker


def _log_exit(worker: Worker, link: ClusterLink) -> None:
    forwarder = worker.forwarder
    log.info(
        "worker stopped",
        instance=worker.instance,
        events_appended=forwarder.appended,
        duplicates=forwarder.duplicates,
        fenced=forwarder.fenced,
        output_lines_dropped=forwarder.output_lines_dropped,
        accounting_dropped=forwarder.accounting_dropped,
        tasks_reclaimed=worker.claims.reclaimed,
        redis_errors=dict(link.errors),
        **_orphan_counts(worker.orphans),
    )


def _orphan_counts(orphans: OrphanGuard | None) -> dict[str, int]:
    if orphans is None:
        return {}
    reaper = orphans.reaper
    return {
        "orphans_killed": reaper.killed,
        "orphans_left_alone": reaper.unverified,
        "ledger_write_errors": orphans.ledger.write_errors,
    }
