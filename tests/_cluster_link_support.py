"""Helpers of the cluster link/script tests: a link per test session, events as wire JSON."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from _redis_support import RedisServer

from api.cluster import (
    AppendRequest,
    ClusterLink,
    QueuedTask,
    SessionKeys,
    SubmitSettings,
    open_link,
    parse_redis_url,
)
from events import Event, EventCodec, TaskQueued
from executor import CommandSpec

_CODEC = EventCodec()
_MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def wire(event: Event) -> str:
    """The event as the producers append it: seq 0 (the stream's seq is the truth)."""
    return _CODEC.encode(0, _MOMENT, event)


def session_name(test_name: str) -> str:
    """A valid, per-test session name (test ids have brackets and such)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", test_name)[-64:]


@asynccontextmanager
async def link_to(server: RedisServer, name: str) -> AsyncIterator[ClusterLink]:
    async with open_link(parse_redis_url(server.url), SessionKeys(session_name(name))) as link:
        yield link


def queued(*task_ids: str) -> list[QueuedTask]:
    return [
        QueuedTask(
            task_id,
            CommandSpec(command=["true"], id=task_id, retries=1),
            wire(TaskQueued(task_id=task_id, name=task_id)),
        )
        for task_id in task_ids
    ]


async def submit(link: ClusterLink, *task_ids: str, settings: SubmitSettings | None = None) -> int:
    return await link.submit("submitter", queued(*task_ids), settings=settings or SubmitSettings())


class Producer:
    """A worker's side of appending: its instance id and its own src_seq counter."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.sent = 0

    def request(
        self,
        event: Event,
        *,
        token: str = "",
        cost_usd: float | None = None,
    ) -> AppendRequest:
        self.sent += 1
        return AppendRequest(
            self.instance,
            self.sent,
            event.task_id,
            token,
            event.event_name,
            cost_usd,
            wire(event),
        )
