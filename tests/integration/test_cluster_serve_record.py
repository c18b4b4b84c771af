"""``runcast serve`` as a process: it records the session into the SQLite store (``runcast
show`` reads it), ``--record`` fails while another process records there, and a
restarted node carries on from its store plus the stream's tail."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import trio
from _api_support import http_get
from _cluster_front_support import producing
from _cluster_link_support import session_name
from _redis_support import running_redis
from _runcast_process import RuncastProcess, run_to_end, start_runcast

from events import TaskCompleted, TaskStarted, TaskUsage

pytestmark = pytest.mark.integration


async def _session(port: int) -> dict[str, object]:
    reply = await http_get(port, "/api/session")
    assert reply.status == 200
    data = reply.json()
    assert isinstance(data, dict)
    return data


async def _until_session(port: int, key: str, value: object) -> None:
    latest: dict[str, object] = {}

    async def poll() -> None:
        nonlocal latest
        latest = await _session(port)

    while latest.get(key) != value:
        await poll()
        await trio.sleep(0.02)


async def _stop(node: RuncastProcess) -> int:
    node.signal(signal.SIGTERM)
    return await node.wait()


async def test_serve_records_and_a_restarted_node_carries_on_from_its_store(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    name = request.node.name
    store = str(tmp_path / "runcast.db")
    with running_redis(tmp_path / "redis") as server:
        serve = ("serve", "--redis", server.url, "--session", session_name(name), "--store", store)
        async with producing(server, name) as worker, trio.open_nursery() as nursery:
            await worker.submit("t1", "t2")
            await worker.claim(2)
            await worker.append(
                TaskStarted(task_id="t1"),
                TaskUsage(task_id="t1", input_tokens=100, cost_usd=0.5),
                TaskCompleted(task_id="t1"),
            )
            with trio.fail_after(30):
                first = await start_runcast(nursery, *serve, cwd=tmp_path)
                await _until_session(first.port, "tasks_completed", 1)
                explicit = await run_to_end(*serve, "--record", "--port", "0", cwd=tmp_path)
                assert await _stop(first) == 0
                # Meanwhile the session goes on without any serve node.
                await worker.append(
                    TaskStarted(task_id="t2"),
                    TaskUsage(task_id="t2", input_tokens=5, cost_usd=0.25),
                    TaskCompleted(task_id="t2"),
                )
                again = await start_runcast(nursery, *serve, cwd=tmp_path)
                await _until_session(again.port, "tasks_completed", 2)
                resumed = await _session(again.port)
                assert await _stop(again) == 0
    assert "(recording)" in first.output
    code, _out, err = explicit  # another process records the session there
    assert code == 2
    assert "runcast serve: session" in err
    assert "(recording)" in again.output
    assert (resumed["input_tokens"], resumed["estimated_cost_usd"]) == (105, 0.75)
    code, listing, _ = await run_to_end("sessions", "--store", store, "--json", cwd=tmp_path)
    assert code == 0
    (session,) = json.loads(listing)
    code, shown, err = await run_to_end(
        "show", session["session_id"], "--store", store, "--json", cwd=tmp_path
    )
    assert code == 0, err
    report = json.loads(shown)
    rows = {task["task_id"]: task for task in report["tasks"]}
    assert {task_id: row["state"] for task_id, row in rows.items()} == {
        "t1": "completed",
        "t2": "completed",
    }
    assert rows["t1"]["usage"]["input_tokens"] == 100
