"""A dashboard that moves to a serve node still behind the one it left (issue 21, point 2).

Node B's reads of the event stream are held back while node A reads on; a
dashboard that saw A's newest events reconnects to B with that ``since``. B
answers once it has read that far, with exactly the events the dashboard missed
(no gap, no duplicate); if it does not get there within 5 s it says how far
behind it is. Against a real redis-server.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import trio
from _api_support import receive_json, send_json, ws_client
from _cluster_front_support import FakeWorker, caught_up, producing, serve_node
from _redis_support import RedisServer

from api.cluster import ClusterLink, StreamEvent
from api.cluster._front import Front
from events import TaskCompleted, TaskOutput, TaskStarted

pytestmark = pytest.mark.integration


class HeldReads:
    """A serve node's link whose event reads wait until released: the node falls behind.

    Everything else (the session state with its seq counter) passes through.
    """

    def __init__(self, inner: ClusterLink) -> None:
        self.inner = inner
        self.holding = trio.Event()
        self.released = trio.Event()

    async def read_events(
        self, after: str, *, count: int, block_ms: int | None
    ) -> list[StreamEvent]:
        if not self.released.is_set():
            self.holding.set()
            await self.released.wait()
        return await self.inner.read_events(after, count=count, block_ms=block_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _hold_back(node: Front) -> HeldReads:
    """Hold ``node``'s reads from the next one on (the one under way ends within a second)."""
    held = HeldReads(node.follower.link)
    node.follower.link = cast(ClusterLink, held)
    await held.holding.wait()
    return held


async def _subscribe(ws: Any, since: int) -> None:
    await send_json(ws, {"type": "subscribe", "task_id": "*", "since": since})


async def _frames_until(ws: Any, last_seq: int) -> list[dict[str, Any]]:
    """Frames (events, gaps, replies; not snapshots) until the event numbered ``last_seq``."""
    frames = []
    while True:
        frame = await receive_json(ws)
        if frame.get("event") == "session_update":
            continue
        frames.append(frame)
        if frame.get("type") == "event" and frame["seq"] == last_seq:
            return frames


async def _nothing_within(ws: Any, seconds: float) -> None:
    with trio.move_on_after(seconds):
        frame = await receive_json(ws)
        raise AssertionError(f"answered before the node read that far: {frame}")


async def _two_nodes_b_held_at_2(worker: FakeWorker, a: Front, b: Front) -> HeldReads:
    await worker.submit("t1")  # seq 1: task_queued
    await worker.claim(1)
    await worker.append(TaskStarted(task_id="t1"))  # seq 2
    await caught_up(a, worker.link)
    await caught_up(b, worker.link)
    return await _hold_back(b)


async def test_a_since_from_the_node_ahead_is_answered_once_the_node_behind_has_read_it(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    async with producing(redis_server, name) as worker:
        with trio.fail_after(20):
            async with serve_node(redis_server, name) as a, serve_node(redis_server, name) as b:
                held = await _two_nodes_b_held_at_2(worker, a, b)
                async with ws_client(a.server.port) as ws:
                    await _subscribe(ws, since=0)
                    await worker.append(*(TaskOutput(task_id="t1", line=f"{n}") for n in range(6)))
                    seen_on_a = await _frames_until(ws, 8)
                # The dashboard loses A; meanwhile the session goes on.
                await worker.append(TaskOutput(task_id="t1", line="6"), TaskCompleted(task_id="t1"))
                async with ws_client(b.server.port) as ws:
                    await _subscribe(ws, since=8)
                    await _nothing_within(ws, 0.5)
                    assert b.publisher.last_seq == 2  # still held back
                    held.released.set()
                    seen_on_b = await _frames_until(ws, 10)
    assert [f.get("seq") for f in seen_on_a] == [None, 1, 2, 3, 4, 5, 6, 7, 8]
    subscribed, *missed = seen_on_b
    assert subscribed == {"type": "subscribed", "task_id": "*", "since": 8}
    assert [(f["type"], f["seq"], f["event"]) for f in missed] == [
        ("event", 9, "task_output"),
        ("event", 10, "task_completed"),
    ]


async def test_a_node_held_back_past_5_s_says_how_far_behind_it_is(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    async with producing(redis_server, name) as worker:
        with trio.fail_after(20):
            async with serve_node(redis_server, name) as a, serve_node(redis_server, name) as b:
                await _two_nodes_b_held_at_2(worker, a, b)
                await worker.append(*(TaskOutput(task_id="t1", line=f"{n}") for n in range(4)))
                await caught_up(a, worker.link)
                async with ws_client(b.server.port) as ws:
                    started = trio.current_time()
                    await _subscribe(ws, since=a.publisher.last_seq)
                    refused = await receive_json(ws)
                    waited = trio.current_time() - started
                    # Beyond the stream's counter: refused at once, as on a single process.
                    await _subscribe(ws, since=1000)
                    beyond = await receive_json(ws)
    assert 5.0 <= waited < 6.0
    assert refused == {
        "type": "error",
        "error": "since: 6 is ahead of this node: it is behind by 4 events (read up to seq 2) "
        "and did not catch up within 5 s; retry, or subscribe without since to start afresh",
        "task_id": "*",
    }
    assert beyond["type"] == "error"
    assert beyond["error"].startswith(
        "since: 1000 is beyond the newest event of the session's stream (seq 6)"
    )
