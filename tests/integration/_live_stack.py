"""A real runcast stack on loopback for the client tests: publisher, broadcaster,
executor and server, with tasks the test drives step by step."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from api import RuncastServer, ServerConfig, serve_runcast
from broadcaster import SessionBroadcaster, serve_broadcaster
from events import Publisher
from executor import Executor, TaskContext, open_executor

OPERATOR_TOKEN = "operator-secret"
VIEWER_TOKEN = "viewer-secret"


async def eventually(condition: Callable[[], bool], poll: float = 0.01) -> None:
    """Return once ``condition()`` holds; callers bound the wait with ``trio.fail_after``."""
    while True:
        if condition():
            return
        await trio.sleep(poll)


async def burner(ctx: TaskContext, steps: trio.MemoryReceiveChannel[int]) -> str:
    """Record ``n`` input tokens (and a tenth as many output tokens) per step sent."""
    async with steps:
        async for tokens in steps:
            ctx.record_usage(
                model="test-model",
                input_tokens=tokens,
                output_tokens=tokens // 10,
                cache_read_tokens=tokens // 2,
                cost_usd=tokens / 100_000,
            )
    return "done"


@attrs.define(eq=False)
class LiveStack:
    publisher: Publisher
    broadcaster: SessionBroadcaster
    executor: Executor
    server: RuncastServer
    _feeds: list[trio.MemorySendChannel[int]] = attrs.field(factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ws_url(self) -> str:
        return self.server.websocket_url

    def start_burner(self, task_id: str, name: str = "") -> trio.MemorySendChannel[int]:
        """Submit a ``burner`` task; send it token counts, close the channel to finish it."""
        send, receive = trio.open_memory_channel[int](16)
        self._feeds.append(send)
        self.executor.submit(burner, receive, task_id=task_id, name=name or task_id)
        return send


@asynccontextmanager
async def live_stack(
    *,
    port: int = 0,
    tokens: bool = False,
    operator_token: str = OPERATOR_TOKEN,
    interval: float = 0.2,
    budget_usd: float | None = None,
    publisher: Publisher | None = None,
    session_id: str | None = None,
) -> AsyncIterator[LiveStack]:
    """Serve on ``port``; with ``tokens``, ``operator_token`` or VIEWER_TOKEN is required.

    Pass the old ``session_id`` and a ``publisher`` made with ``last_seq=`` to
    stand in for a restart that resumes a stored session: its seqs carry on.
    """
    config = ServerConfig(
        port=port,
        auth_tokens=(operator_token,) if tokens else (),
        viewer_tokens=(VIEWER_TOKEN,) if tokens else (),
        close_timeout=0.5,
    )
    if publisher is None:
        publisher = Publisher()
    async with trio.open_nursery() as nursery:
        broadcaster = await nursery.start(
            lambda task_status: serve_broadcaster(
                publisher, interval=interval, session_id=session_id, task_status=task_status
            )
        )
        async with open_executor(publisher, concurrency=4, budget_usd=budget_usd) as executor:
            server = await nursery.start(
                lambda task_status: serve_runcast(
                    publisher,
                    session_source=broadcaster,
                    executor=executor,
                    config=config,
                    task_status=task_status,
                )
            )
            stack = LiveStack(publisher, broadcaster, executor, server)
            try:
                yield stack
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await server.shutdown()
                executor.cancel_all(reason="test over")
                for feed in stack._feeds:
                    feed.close()
        nursery.cancel_scope.cancel()
