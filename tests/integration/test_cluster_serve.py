"""Serve nodes of one cluster session against a real redis-server: the same answers on
every node, ``since`` carried from one node to another, and history gaps after trimming."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from _api_support import http_get, receive_json, ws_client
from _api_support import request as ws_request
from _cluster_front_support import caught_up, producing, serve_node
from _cluster_link_support import session_name
from _redis_support import RedisServer

from api.cluster import SessionKeys
from events import TaskCompleted, TaskFailed, TaskOutput, TaskStarted, TaskUsage

pytestmark = pytest.mark.integration


async def _get(port: int, target: str) -> Any:
    reply = await http_get(port, target)
    assert reply.status == 200, reply.body
    return reply.json()


async def _events_until(ws: Any, last_seq: int) -> list[dict[str, Any]]:
    """Frames (events and gaps, not snapshots) until the event numbered ``last_seq``."""
    frames = []
    while True:
        frame = await receive_json(ws)
        if frame.get("event") == "session_update":
            continue
        frames.append(frame)
        if frame.get("seq") == last_seq:
            return frames


async def test_two_nodes_answer_the_session_and_tasks_identically(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    async with producing(redis_server, name) as worker:
        await worker.submit("t1", "t2", "t3")
        assert await worker.claim(2) == ["t1", "t2"]
        await worker.append(
            TaskStarted(task_id="t1", name="t1"),
            TaskUsage(task_id="t1", input_tokens=100, output_tokens=20, cost_usd=0.25),
            TaskStarted(task_id="t2", name="t2"),
            TaskUsage(task_id="t2", input_tokens=7, cache_read_tokens=3),
            TaskCompleted(task_id="t1", exit_code=0),
        )
        with trio.fail_after(10):
            async with serve_node(redis_server, name) as a:
                await caught_up(a, worker.link)
                # B starts later: it reads everything A read, long after it happened.
                await worker.append(TaskFailed(task_id="t2", error="exit 1", exit_code=1))
                async with serve_node(redis_server, name) as b:
                    await caught_up(a, worker.link)
                    await caught_up(b, worker.link)
                    session_a = await _get(a.server.port, "/api/session")
                    session_b = await _get(b.server.port, "/api/session")
                    tasks_a = await _get(a.server.port, "/api/tasks")
                    tasks_b = await _get(b.server.port, "/api/tasks")
                    paged_b = await _get(b.server.port, "/api/tasks?limit=2")
                    paged_a = await _get(a.server.port, "/api/tasks?limit=2")
                    metrics = (await http_get(b.server.port, "/metrics")).body.decode()
    # The duration counts from the first start's own time on both; it is a clock read.
    assert abs(session_a.pop("duration_seconds") - session_b.pop("duration_seconds")) <= 1
    assert session_a == session_b
    assert session_a["session_id"] == session_name(name)
    assert (session_a["input_tokens"], session_a["output_tokens"]) == (107, 20)
    assert (session_a["cache_read_tokens"], session_a["estimated_cost_usd"]) == (3, 0.25)
    assert (session_a["unpriced_tokens"], session_a["tasks_completed"]) == (10, 1)
    assert (session_a["tasks_failed"], session_a["tasks_queued"]) == (1, 1)
    assert session_a["stale"] is False
    assert tasks_a == tasks_b
    assert [(t["task_id"], t["state"]) for t in tasks_a["tasks"]] == [
        ("t1", "completed"),
        ("t2", "failed"),
        ("t3", "queued"),
    ]
    assert paged_a == paged_b
    assert "runcast_stream_lag_events 0.0" in metrics
    assert "runcast_workers " in metrics
    assert "runcast_tasks_reclaimed_total 0.0" in metrics
    assert paged_a["next"] is not None


async def test_since_from_one_node_gets_exactly_the_missing_events_on_another(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    async with producing(redis_server, name) as worker:
        await worker.submit("t1")
        await worker.claim(1)
        await worker.append(TaskStarted(task_id="t1"))
        with trio.fail_after(10):
            async with serve_node(redis_server, name) as a, serve_node(redis_server, name) as b:
                await caught_up(a, worker.link)
                async with ws_client(a.server.port) as ws:
                    await request_subscribe(ws, since=0)
                    seen = await _events_until(ws, 2)
                assert [f["seq"] for f in seen] == [1, 2]
                # The dashboard loses A; meanwhile the session goes on.
                await worker.append(
                    *(TaskOutput(task_id="t1", line=f"line {n}") for n in range(5)),
                    TaskCompleted(task_id="t1"),
                )
                await caught_up(b, worker.link)
                async with ws_client(b.server.port) as ws:
                    await request_subscribe(ws, since=seen[-1]["seq"])
                    missed = await _events_until(ws, 8)
    assert [(f["type"], f["seq"]) for f in missed] == [("event", seq) for seq in range(3, 9)]
    assert [f["event"] for f in missed] == ["task_output"] * 5 + ["task_completed"]


async def test_a_node_that_starts_after_trimming_says_history_for_what_it_cannot_replay(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    async with producing(redis_server, name) as worker:
        await worker.submit("t1")
        await worker.claim(1)
        await worker.append(
            TaskStarted(task_id="t1"),
            *(TaskOutput(task_id="t1", line=f"line {n}") for n in range(8)),
        )  # seqs 1..10
        client = redis_server.client()
        client.xtrim(SessionKeys(session_name(name)).events, maxlen=4, approximate=False)
        client.close()
        with trio.fail_after(10):
            async with serve_node(redis_server, name) as late:
                await caught_up(late, worker.link)
                async with ws_client(late.server.port) as ws:
                    await request_subscribe(ws, since=2)
                    frames = await _events_until(ws, 10)
    gap, *events = frames
    assert gap == {
        "type": "gap",
        "task_id": "*",
        "first_seq": 3,
        "last_seq": 6,
        "missed": None,
        "reason": "history",
    }
    assert [f["seq"] for f in events] == [7, 8, 9, 10]


async def request_subscribe(ws: Any, *, since: int | None) -> None:
    frame: dict[str, Any] = {"type": "subscribe", "task_id": "*"}
    if since is not None:
        frame["since"] = since
    reply = await ws_request(ws, frame)
    assert reply["type"] == "subscribed", reply
