"""The HTTP side of the one port, over real loopback connections."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from _api_support import T0, FakeTask, Stack, http_exchange, http_get, served
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from api import ServerConfig
from api.server._exceptions import HttpError
from api.server._http import HttpConnection
from events import TaskStarted, TaskUsage

TIMEOUT = 10


async def test_healthz() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            reply = await http_get(stack.port, "/healthz")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"status": "ok", "stale": False}
    assert reply.headers["connection"] == "close"
    assert reply.headers["referrer-policy"] == "no-referrer"


async def test_index_serves_the_dashboard_page() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            reply = await http_get(stack.port, "/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert b"<title>runcast</title>" in reply.body


async def test_index_falls_back_to_a_minimal_page(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with served(ServerConfig(port=0, static_dir=tmp_path)) as stack:
            reply = await http_get(stack.port, "/")
    assert reply.status == 200
    assert b"dashboard page is not installed" in reply.body


async def test_static_files_and_traversal() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            css = await http_get(stack.port, "/static/dashboard.css")
            missing = await http_get(stack.port, "/static/nope.css")
            traversal = await http_get(stack.port, "/static/..%2F_server.py")
            dotted = await http_get(stack.port, "/static/../_server.py")
    assert css.status == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert missing.status == 404
    assert traversal.status == 404
    assert dotted.status == 404


async def _session_with_usage(stack: Stack) -> None:
    stack.publisher.publish(TaskStarted(task_id="t1", name="first"))
    stack.publisher.publish(
        TaskUsage(
            task_id="t1",
            model="claude-sonnet-4-5",
            input_tokens=100,
            output_tokens=20,
            cache_read_tokens=5,
            cost_usd=0.25,
            cost_source="reported",
        )
    )


async def test_api_session_is_the_snapshot_data() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            await _session_with_usage(stack)
            reply = await http_get(stack.port, "/api/session")
            snapshot = stack.broadcaster.snapshot()
    assert reply.status == 200
    data = reply.json()
    assert "task_id" not in data
    assert data["input_tokens"] == snapshot.input_tokens == 100
    assert data["total_tokens"] == 125
    assert data["estimated_cost_usd"] == 0.25
    assert data["tasks_running"] == 1
    assert data["session_id"] == snapshot.session_id
    assert data["is_paused"] is False


async def test_api_tasks_lists_every_task() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.executor.rows.append(
                FakeTask(
                    task_id="t2",
                    state="failed",
                    attempts=2,
                    started_at=T0,
                    error="exit 3",
                    exit_code=3,
                    estimated_cost_usd=0.5,
                    unpriced_tokens=12,
                )
            )
            reply = await http_get(stack.port, "/api/tasks")
    assert reply.status == 200
    tasks = reply.json()["tasks"]
    assert [t["task_id"] for t in tasks] == ["t1", "t2"]
    assert tasks[1] == {
        "task_id": "t2",
        "name": "",
        "state": "failed",
        "attempts": 2,
        "started_at": "2026-11-22T10:00:00.000000Z",
        "ended_at": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "estimated_cost_usd": 0.5,
        "unpriced_tokens": 12,
        "error": "exit 3",
        "exit_code": 3,
    }


async def test_api_tasks_without_an_executor_is_empty() -> None:
    with trio.fail_after(TIMEOUT):
        async with served(with_executor=False) as stack:
            reply = await http_get(stack.port, "/api/tasks")
    assert reply.json() == {"tasks": [], "next": None}


async def test_metrics_text_and_openmetrics() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            await _session_with_usage(stack)
            text = await http_get(stack.port, "/metrics")
            om = await http_get(
                stack.port,
                "/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            )
    assert text.status == 200
    assert text.headers["content-type"].startswith("text/plain")
    families = text_string_to_metric_families(text.body.decode())
    names = {family.name for family in families}
    assert "runcast_tasks_running" in names
    assert "runcast_websocket_connections" in names
    assert om.status == 200
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    om_families = parse_om(om.body.decode())  # type: ignore[no-untyped-call]
    assert any(f.name == "runcast_tasks_running" for f in om_families)


async def test_unknown_path_is_404_and_wrong_method_is_405() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            missing = await http_get(stack.port, "/nope")
            post = await http_get(
                stack.port, "/api/tasks", method="POST", headers={"Content-Length": "0"}
            )
            delete_ws = await http_get(stack.port, "/ws", method="DELETE")
            plain_ws = await http_get(stack.port, "/ws")
            alive = await http_get(stack.port, "/healthz")
    assert missing.status == 404
    assert b"/nope" in missing.body
    assert post.status == 405
    assert post.headers["allow"] == "GET"
    assert delete_ws.status == 405
    assert plain_ws.status == 426
    assert plain_ws.headers["upgrade"] == "websocket"
    assert alive.status == 200


async def test_head_is_answered_without_a_body_and_the_server_lives() -> None:
    answers = []
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            for target in ("/", "/healthz", "/nope"):
                async with await trio.open_tcp_stream("127.0.0.1", stack.port) as stream:
                    await stream.send_all(
                        f"HEAD {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
                    )
                    answer = b""
                    while chunk := await stream.receive_some(4096):
                        answer += chunk
                answers.append(answer)
            alive = await http_get(stack.port, "/healthz")
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"405", b"405", b"404"]
    assert all(answer.endswith(b"\r\n\r\n") for answer in answers)  # headers only
    assert alive.status == 200


async def test_an_error_answer_that_cannot_be_sent_ends_only_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(self: HttpConnection, error: HttpError) -> None:
        raise RuntimeError(f"cannot frame a {error.status}")

    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            with monkeypatch.context() as patched:
                patched.setattr(HttpConnection, "respond_error", refuse)
                # Closed without an answer, where the server would have said 404.
                async with await trio.open_tcp_stream("127.0.0.1", stack.port) as stream:
                    await stream.send_all(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    cut = await stream.receive_some(4096)
            alive = await http_get(stack.port, "/healthz")
    assert cut == b""
    assert alive.status == 200


async def test_malformed_and_oversized_heads() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            no_host = await http_exchange(stack.port, b"GET / HTTP/1.1\r\n\r\n")
            bad_line = await http_exchange(stack.port, b"HELLO THERE\r\n\r\n")
            relative = await http_exchange(
                stack.port, b"GET nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            big = await http_exchange(
                stack.port,
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            )
            alive = await http_get(stack.port, "/healthz")
    assert no_host.status == 400
    assert bad_line.status == 400
    assert relative.status == 400
    assert big.status == 431
    assert alive.status == 200


async def test_garbage_stream_does_not_hurt_the_server() -> None:
    garbage = bytes(range(256)) * 200  # 51 KiB of every byte value
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            reply = await http_exchange(stack.port, garbage)
            alive = await http_get(stack.port, "/healthz")
    assert reply.status in (400, 431)
    assert alive.status == 200


async def test_abrupt_close_mid_head_is_harmless() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            for _ in range(20):
                stream = await trio.open_tcp_stream("127.0.0.1", stack.port)
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nHo")
                await stream.aclose()
            alive = await http_get(stack.port, "/healthz")
    assert alive.status == 200
