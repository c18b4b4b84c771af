"""The serve node's stack: what ``runcast serve`` serves for a cluster session.

The same stack as ``runcast run`` (``api/_stack.py``, whose services it reuses)
with the executor replaced by the session's Redis::

    Redis events ─▶ StreamFollower ─▶ RelayPublisher ─┬─▶ SessionBroadcaster ─ session_update ─▶
     (seq, time)                                        ├─▶ RuncastMetrics + cluster metrics
                                                        ├─▶ TaskTable (/api/tasks)
                                                        ├─▶ StoreRecorder ─▶ SQLite (--record)
                                                        └─▶ RuncastServer ─▶ WebSocket, /api/*
    operators ─ pause, resume, cancel, retry, budget ─▶ ClusterControls ─▶ control script

A recording node first takes up what its store already holds of the session
(``_store_start``: its whole history replayed, or the store's sums when it kept
only the newest events), so a restarted node reads only the stream's tail; the
recorder then writes what the stream adds.
:func:`open_front` stops in the order that loses nothing: the follower and the
command sender stop, the broadcaster sends its final update, the server
delivers it and closes its clients, the recorder flushes.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import attrs
import structlog
import trio
from prometheus_client import CollectorRegistry

from broadcaster import RuncastMetrics, SessionBroadcaster, serve_broadcaster
from events import RelayPublisher

from .._stack import StackSettings, _Service, _StorePressure, _StoreServices
from ..server import RuncastServer, ServerConfig, serve_runcast
from ..store import SessionLease, SessionStore, StoreRecorder
from ._cluster_metrics import ClusterCollector, ReclaimCounter, register_cluster_metrics
from ._controls import ClusterControls, serve_cluster_controls
from ._follower import StreamFollower, serve_follower
from ._link import ClusterLink
from ._store_start import apply_store_start, read_store
from ._tasks import TaskTable
from ._values import ClusterState

log = structlog.get_logger("runcast.cluster")


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(kw_only=True)
class FrontSettings:
    """What a serve node is built with (``runcast serve``'s flags, resolved)."""

    server: ServerConfig
    interval: float = 10.0
    #: The store's session this node records into (with ``store``).
    store_session_id: str | None = None


@attrs.define(eq=False)
class Front:
    publisher: RelayPublisher
    metrics: RuncastMetrics
    broadcaster: SessionBroadcaster
    table: TaskTable
    controls: ClusterControls
    follower: StreamFollower
    server: RuncastServer
    recorder: StoreRecorder | None = None


def _follow_state(controls: ClusterControls) -> functools.partial[None]:
    return functools.partial(_take_state, controls)


def _take_state(controls: ClusterControls, state: ClusterState) -> None:
    controls.on_budget = state.on_budget


@asynccontextmanager
async def open_front(
    settings: FrontSettings,
    link: ClusterLink,
    *,
    store: SessionStore | None = None,
    lease: SessionLease | None = None,
) -> AsyncIterator[Front]:
    """Publisher, metrics, broadcaster, task table, recorder, controls, follower and
    server of the session ``link`` reaches, torn down in reverse.

    It serves at once, marked stale until the follower has read up to the
    session's seq counter.
    """
    stack_settings = StackSettings(server=settings.server, session_id=settings.store_session_id)
    start = None
    if store is not None and settings.store_session_id is not None:
        start = read_store(store, settings.store_session_id, link.keys.name)
    # Past a store that kept only its newest events, the node carries on after them.
    publisher = RelayPublisher(last_seq=start.last_seq if start and start.pruned else 0)
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    table = TaskTable()
    reclaims = ReclaimCounter()
    remove_table = publisher.add_listener(table.apply)
    remove_reclaims = publisher.add_listener(reclaims)
    broadcasting, following, commanding = _Service(), _Service(), _Service()
    store_services = _StoreServices()
    unregister = None
    try:
        async with trio.open_nursery() as nursery:
            broadcaster: SessionBroadcaster = await broadcasting.start(
                nursery,
                functools.partial(
                    serve_broadcaster,
                    publisher,
                    metrics=metrics,
                    interval=settings.interval,
                    # The same on every node: /api/session answers alike everywhere.
                    session_id=link.keys.name,
                    wall_clock=_now,
                ),
            )
            broadcaster.set_stale(True)
            if start is not None:
                apply_store_start(start, publisher, broadcaster, table)
                log.info("started from the store", last_seq=publisher.last_seq, pruned=start.pruned)
            await store_services.start(
                nursery, store, lease, publisher, stack_settings, _StorePressure()
            )
            controls = ClusterControls(table, broadcaster.aggregate)
            await commanding.start(
                nursery, functools.partial(serve_cluster_controls, controls, link)
            )
            follower: StreamFollower = await following.start(
                nursery,
                functools.partial(
                    serve_follower,
                    link,
                    publisher,
                    on_stale=broadcaster.set_stale,
                    on_state=_follow_state(controls),
                    recorder=store_services.recorder,
                ),
            )
            collector = ClusterCollector(
                workers=lambda: follower.workers_live,
                lag=lambda: follower.lag,
                reclaimed=reclaims,
                errors=link.errors,
            )
            unregister = register_cluster_metrics(metrics.registry, collector)
            server: RuncastServer = await nursery.start(
                functools.partial(
                    serve_runcast,
                    publisher,
                    session_source=broadcaster,
                    executor=controls,
                    metrics=metrics,
                    config=settings.server,
                )
            )
            yield Front(
                publisher,
                metrics,
                broadcaster,
                table,
                controls,
                follower,
                server,
                store_services.recorder,
            )
            await following.stop()
            await commanding.stop()
            await broadcasting.stop()  # its final update goes out as it stops
            await server.shutdown()
            await store_services.stop()
    finally:
        if unregister is not None:
            unregister()
        remove_table()
        remove_reclaims()
        publisher.close()
        metrics.close()
