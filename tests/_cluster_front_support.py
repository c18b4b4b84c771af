"""Helpers of the serve-node tests: a serve node in-process, and a session's events
produced the way a worker produces them (claimed leases, appends), without a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio
from _cluster_link_support import Producer, queued, session_name
from _redis_support import RedisServer

from api.cluster import (
    ClusterLink,
    SessionKeys,
    SubmitSettings,
    open_link,
    parse_redis_url,
)
from api.cluster._front import Front, FrontSettings, open_front
from api.server import ServerConfig
from api.store import SessionLease, SessionStore
from events import Event, TaskUsage

LEASE_MS = 30_000


async def eventually(condition: Callable[[], bool], poll: float = 0.01) -> None:
    """Return once ``condition()`` holds; callers bound the wait with ``trio.fail_after``."""
    while True:
        if condition():
            return
        await trio.sleep(poll)


@asynccontextmanager
async def serve_node(
    server: RedisServer,
    name: str,
    *,
    store: SessionStore | None = None,
    lease: SessionLease | None = None,
    config: ServerConfig | None = None,
) -> AsyncIterator[Front]:
    """A serve node of session ``name`` on a free loopback port."""
    target = parse_redis_url(server.url)
    async with open_link(target, SessionKeys(session_name(name)), client_name="test-serve") as link:
        settings = FrontSettings(
            server=config or ServerConfig(port=0),
            interval=60.0,
            store_session_id=None if lease is None else lease.session_id,
        )
        async with open_front(settings, link, store=store, lease=lease) as front:
            yield front


async def caught_up(front: Front, link: ClusterLink) -> None:
    """Until ``front`` has read everything appended so far and says it is current."""
    last = (await link.state()).last_seq
    await eventually(lambda: front.publisher.last_seq >= last and not front.follower.stale)


@attrs.define(eq=False)
class FakeWorker:
    """Appends a session's task events as a worker would: claim, then append with the token."""

    link: ClusterLink
    producer: Producer = attrs.field(factory=lambda: Producer("w:test:0001"))
    tokens: dict[str, str] = attrs.field(factory=dict)

    async def submit(self, *task_ids: str, settings: SubmitSettings | None = None) -> int:
        return await self.link.submit(
            "submitter", queued(*task_ids), settings=settings or SubmitSettings()
        )

    async def claim(self, count: int) -> list[str]:
        claims = await self.link.claim(self.producer.instance, count, LEASE_MS)
        for claim in claims:
            self.tokens[claim.task_id] = claim.token
        return [claim.task_id for claim in claims]

    async def append(self, *events: Event) -> None:
        requests = [
            self.producer.request(
                event,
                token=self.tokens.get(event.task_id, ""),
                cost_usd=event.cost_usd if isinstance(event, TaskUsage) else None,
            )
            for event in events
        ]
        results = await self.link.append_many(requests)
        assert all(result.status == "ok" for result in results), results


@asynccontextmanager
async def producing(server: RedisServer, name: str) -> AsyncIterator[FakeWorker]:
    target = parse_redis_url(server.url)
    async with open_link(target, SessionKeys(session_name(name)), client_name="test-w") as link:
        yield FakeWorker(link)
