"""``runcast serve --redis URL --session NAME``: a cluster session's dashboard and API.

It serves what ``runcast run`` serves, for the session's events read from Redis
(``api.cluster.open_front``); operators' commands go to the session's control
stream. Several may run for one session. ``--record`` writes the session into
the SQLite store as ``runcast run`` does; by default a node records when it can
take the store's hold on the session (the first one started on that store),
and serves without recording when another live process holds it. A restarted
recording node carries on with the same store session. SIGINT/SIGTERM stop it
(exit 0); bad input, Redis unreachable or refusing the credentials: one line on
stderr, exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AsyncExitStack
from typing import TextIO

import attrs
import structlog
import trio

from ..cluster import (
    FrontSettings,
    RedisTarget,
    SessionKeys,
    open_front,
    open_link,
    parse_redis_url,
)
from ..server import ServerConfig
from ..store import (
    LeaseOwner,
    SessionLease,
    SessionLeasedError,
    SessionStore,
    claim_session,
    release_lease,
)
from ._main import server_config
from ._run import announce
from ._signals import watch_stop_signals

log = structlog.get_logger("runcast.api")


@attrs.frozen(kw_only=True)
class ServeOptions:
    """``runcast serve``'s flags, checked."""

    target: RedisTarget
    keys: SessionKeys
    server: ServerConfig
    interval: float = 10.0
    store: str
    #: True: record (fail if another process does); False: never; None: if free.
    record: bool | None = None


@attrs.frozen
class _Recording:
    store: SessionStore
    lease: SessionLease

    @property
    def session_id(self) -> str:
        return self.lease.session_id


def store_job_key(keys: SessionKeys) -> str:
    """The store's name for a cluster session: its sessions are found again by it."""
    return f"cluster:{keys.name}"


def open_recording(options: ServeOptions, *, owner: LeaseOwner | None = None) -> _Recording | None:
    """The store and its hold on the session, if this node records (``options.record``)."""
    if options.record is False:
        return None
    store = SessionStore.open(options.store)
    try:
        claim = claim_session(
            store,
            job_key=store_job_key(options.keys),
            job_path=f"redis session {options.keys.name}",
            owner=owner,
        )
    except SessionLeasedError as exc:
        store.close()
        if options.record:
            raise
        log.info("not recording: another process records this session", reason=str(exc))
        return None
    except BaseException:
        store.close()
        raise
    return _Recording(store, claim.lease)


def close_recording(recording: _Recording) -> None:
    try:
        # The cluster session goes on without this node: the next one carries it on.
        recording.store.end_session(recording.session_id, status="interrupted")
        release_lease(recording.store, recording.lease)
    finally:
        recording.store.close()


async def serve_cluster(options: ServeOptions, *, out: TextIO = sys.stdout) -> int:
    """Serve until SIGINT/SIGTERM; 0."""
    recording = open_recording(options)
    settings = FrontSettings(
        server=options.server,
        interval=options.interval,
        store_session_id=None if recording is None else recording.session_id,
    )
    try:
        async with AsyncExitStack() as stack:
            link = await stack.enter_async_context(
                open_link(options.target, options.keys, client_name="runcast-serve")
            )
            stop = await stack.enter_async_context(watch_stop_signals())
            front = await stack.enter_async_context(
                open_front(
                    settings,
                    link,
                    store=None if recording is None else recording.store,
                    lease=None if recording is None else recording.lease,
                )
            )
            announce(front.server, out)
            where = "recording" if recording is not None else "not recording"
            print(
                f"runcast: serving session {options.keys.name} from {options.target} ({where})",
                file=out,
                flush=True,
            )
            await stop.wait()
            front.server.stop_accepting()
    finally:
        if recording is not None:
            close_recording(recording)
    return 0


def serve_command(args: argparse.Namespace) -> int:
    options = ServeOptions(
        target=parse_redis_url(args.redis, os.environ),
        keys=SessionKeys(args.session),
        server=server_config(args),
        interval=args.interval,
        store=args.store,
        record=args.record,
    )
    return trio.run(serve_cluster, options)
