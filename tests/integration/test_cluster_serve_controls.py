"""A serve node's operator commands reach the session's control stream (real redis-server),
and the node says it is stale while Redis is away, then catches up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from _api_support import http_get, receive_json, ws_client
from _api_support import request as ws_request
from _cluster_front_support import caught_up, eventually, producing, serve_node
from _cluster_link_support import session_name, wire
from _redis_support import RedisServer, running_redis

from api.cluster import ControlCommand, SessionKeys, SubmitSettings
from events import (
    BudgetChanged,
    BudgetExhausted,
    ExecutorPaused,
    SessionUpdate,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)

pytestmark = pytest.mark.integration


def _controls(server: RedisServer, name: str) -> list[dict[str, str]]:
    client = server.client()
    try:
        entries: Any = client.xrange(SessionKeys(session_name(name)).control)
    finally:
        client.close()
    return [fields for _id, fields in entries]


def _state(server: RedisServer, name: str) -> dict[str, str]:
    client = server.client()
    try:
        return client.hgetall(SessionKeys(session_name(name)).state)  # type: ignore[return-value]
    finally:
        client.close()


async def _command(ws: Any, action: str, task_id: str = "*", **data: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "command", "action": action, "task_id": task_id}
    if data:
        frame["data"] = data
    return await ws_request(ws, frame)


async def test_pause_resume_and_cancel_reach_the_control_stream(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    async with producing(redis_server, name) as worker:
        await worker.submit("t1", "t2", "t3")
        await worker.claim(1)
        await worker.append(TaskStarted(task_id="t1"))
        with trio.fail_after(10):
            async with serve_node(redis_server, name) as node, ws_client(node.server.port) as ws:
                await caught_up(node, worker.link)
                paused = await _command(ws, "pause")
                assert paused["status"] == "paused"
                await eventually(lambda: node.broadcaster.aggregate.is_paused)
                assert _state(redis_server, name)["paused"] == "1"
                assert (await _command(ws, "resume"))["status"] == "resumed"
                await eventually(lambda: not node.broadcaster.aggregate.is_paused)
                # t1 runs on a worker: the command goes to it; t3 waits: it ends here.
                assert (await _command(ws, "cancel", "t1"))["status"] == "cancelled"
                assert (await _command(ws, "cancel", "t3"))["status"] == "cancelled"
                await eventually(lambda: node.table.tasks()[2].state == "cancelled")
                again = await _command(ws, "cancel", "t3")
                concurrency = await _command(ws, "set_concurrency", concurrency=8)
                unknown = await _command(ws, "cancel", "nope")
                ops = [(c["op"], c["task_id"]) for c in _controls(redis_server, name)]
    assert ops[-3:] == [("pause", "*"), ("resume", "*"), ("cancel", "t1")]
    assert again["status"] == "already_ended"
    assert concurrency["type"] == "error"
    assert "concurrency is per worker in cluster mode" in concurrency["error"]
    assert unknown["type"] == "error"
    assert "no task with id 'nope'" in unknown["error"]
    states = {task.task_id: task.state for task in node.table.tasks()}
    assert states == {"t1": "running", "t2": "queued", "t3": "cancelled"}
    pauses = [
        item.event
        for item in node.publisher.history_since(0)
        if isinstance(item.event, ExecutorPaused)
    ]
    assert [pause.by for pause in pauses] == ["operator"]


async def test_resume_is_refused_over_budget_until_the_budget_is_raised(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    budget = wire(BudgetChanged(budget_usd=0.01, by="startup"))
    settings = SubmitSettings(budget_usd=0.01, startup_events=(budget,))
    async with producing(redis_server, name) as worker:
        await worker.submit("t1", settings=settings)
        await worker.claim(1)
        await worker.append(
            TaskStarted(task_id="t1"), TaskUsage(task_id="t1", input_tokens=10, cost_usd=0.02)
        )
        # What the worker whose append crossed the budget does: announce it, pause all.
        reason = "budget exhausted: spent $0.0200 of $0.0100"
        events = (
            wire(BudgetExhausted(budget_usd=0.01, spent_usd=0.02)),
            wire(ExecutorPaused(by="budget", reason=reason)),
        )
        await worker.link.control(
            ControlCommand(op="pause", by="budget", reason=reason, events=events)
        )
        with trio.fail_after(10):
            async with serve_node(redis_server, name) as node, ws_client(node.server.port) as ws:
                await caught_up(node, worker.link)
                refused = await _command(ws, "resume")
                raised = await _command(ws, "set_budget", budget_usd=1.0)
                await eventually(lambda: node.broadcaster.aggregate.budget_usd == 1.0)
                resumed = await _command(ws, "resume")
                await eventually(lambda: not node.broadcaster.aggregate.is_paused)
    assert refused["type"] == "error"
    assert "cannot resume: spent $0.0200 of the $0.0100 budget" in refused["error"]
    assert raised["status"] == "budget_set"
    assert resumed["status"] == "resumed"
    state = _state(redis_server, name)
    assert (state["paused"], state["budget_usd"]) == ("0", "1.0")


async def _session_updates_until(ws: Any, stale: bool) -> SessionUpdate | None:
    while True:
        frame = await receive_json(ws)
        if frame.get("event") == "session_update" and frame["data"]["stale"] is stale:
            return None


async def test_stale_while_redis_is_stopped_then_caught_up_after_restart(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    with running_redis(tmp_path / "redis") as server:
        async with producing(server, name) as worker:
            await worker.submit("t1")
            await worker.claim(1)
            await worker.append(TaskStarted(task_id="t1"))
            with trio.fail_after(20):
                async with serve_node(server, name) as node, ws_client(node.server.port) as ws:
                    await caught_up(node, worker.link)
                    before = (await http_get(node.server.port, "/healthz")).json()
                    await ws_request(ws, {"type": "subscribe", "task_id": "*"})
                    server.stop()
                    await _session_updates_until(ws, stale=True)
                    during = (await http_get(node.server.port, "/healthz")).json()
                    await trio.to_thread.run_sync(server.start)
                    # Written while the node reconnects: it catches up on it.
                    await worker.append(TaskUsage(task_id="t1", input_tokens=42))
                    await _session_updates_until(ws, stale=False)
                    after = (await http_get(node.server.port, "/healthz")).json()
                    await eventually(lambda: node.broadcaster.aggregate.input_tokens == 42)
                    errors = dict(node.follower.link.errors)
    assert before == {"status": "ok", "stale": False}
    assert during == {"status": "stale", "stale": True}
    assert after == {"status": "ok", "stale": False}
    assert errors  # counted by operation, for runcast_redis_errors_total


async def test_retry_and_budget_crossings_from_a_serve_node_land_in_the_stream(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    async with producing(redis_server, name) as worker:
        await worker.submit("t1", "t2")
        await worker.claim(2)
        await worker.append(
            TaskStarted(task_id="t1"),
            TaskUsage(task_id="t1", input_tokens=10, cost_usd=0.02),
            TaskFailed(task_id="t1", error="exit 1", exit_code=1),
        )
        with trio.fail_after(10):
            async with serve_node(redis_server, name) as node, ws_client(node.server.port) as ws:
                await caught_up(node, worker.link)
                retried = await _command(ws, "retry", "t1")
                not_ended = await _command(ws, "retry", "t2")
                await eventually(lambda: node.table.tasks()[0].state == "queued")
                # 0.02 spent: 80 % of 0.024 is crossed, not the budget.
                assert (await _command(ws, "set_budget", budget_usd=0.024))[
                    "status"
                ] == "budget_set"
                await eventually(lambda: _names(node).count("budget_warning") == 1)
                assert not node.broadcaster.aggregate.is_paused
                assert (await _command(ws, "set_budget", budget_usd=0.015))[
                    "status"
                ] == "budget_set"
                await eventually(lambda: node.broadcaster.aggregate.is_paused)
                names = _names(node)
                aggregate = node.broadcaster.aggregate
    assert retried["status"] == "queued"
    assert not_ended["type"] == "error"
    assert "only a failed, timed-out or cancelled task can be retried" in not_ended["error"]
    queued = [e.event for e in node.publisher.history_since(0) if isinstance(e.event, TaskQueued)]
    assert [(event.task_id, event.attempt) for event in queued][-1] == ("t1", 2)
    assert names[-5:] == [
        "budget_changed",
        "budget_warning",
        "budget_changed",
        "budget_exhausted",
        "executor_paused",
    ]
    assert (aggregate.paused_by, aggregate.budget_usd) == ("budget", 0.015)
    assert _state(redis_server, name)["paused"] == "1"


def _names(node: Any) -> list[str]:
    return [item.event_name for item in node.publisher.history_since(0)]
