"""DNS rebinding against a token-less server, over loopback (issue 17, item 4).

A page at ``http://attacker.example:PORT`` whose name is rebound to 127.0.0.1
sends ``Host: attacker.example:PORT`` and ``Origin: http://attacker.example:PORT``:
same-origin with itself, so the Origin check alone let it pause the run, zero the
budget and read every command line.  Only loopback ``Host`` names are served now.
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog
import trio
import wsproto.events
from _api_support import RawWebSocket, http_exchange, http_get, served
from prometheus_client.parser import text_string_to_metric_families

from api import ServerConfig

TIMEOUT = 10
HTTP_PATHS = ["/api/tasks", "/api/session", "/metrics", "/", "/healthz", "/static/dashboard.js"]


def _rebinding_headers(port: int) -> dict[str, str]:
    return {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}


async def _get_as(port: int, path: str, headers: dict[str, str]) -> Any:
    lines = [f"GET {path} HTTP/1.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return await http_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode())


async def _handshake(port: int, host: str, origin: str | None) -> int:
    """The status a WebSocket handshake to ``/ws`` gets (101 when accepted)."""
    extra = [] if origin is None else [(b"Origin", origin.encode())]
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        raw = RawWebSocket(stream)
        await raw.send(wsproto.events.Request(host=host, target="/ws", extra_headers=extra))
        event = await raw.next_event()
    if isinstance(event, wsproto.events.AcceptConnection):
        return 101
    assert isinstance(event, wsproto.events.RejectConnection), event
    return event.status_code


@pytest.mark.parametrize("path", HTTP_PATHS)
async def test_rebinding_request_is_421_on_every_path(path: str) -> None:
    with trio.fail_after(TIMEOUT), structlog.testing.capture_logs() as logs:
        async with served() as stack:
            reply = await _get_as(stack.port, path, _rebinding_headers(stack.port))
    assert reply.status == 421
    assert f"Host 'attacker.example:{stack.port}' is not a name" in reply.body.decode()
    assert b"first" not in reply.body  # the task's name (its command line) is not in it
    refusals = [entry for entry in logs if entry["event"] == "request refused"]
    assert [(r["status"], r["path"]) for r in refusals] == [(421, path)]


async def test_rebinding_page_cannot_open_the_websocket_to_pause_or_zero_the_budget() -> None:
    with trio.fail_after(TIMEOUT), structlog.testing.capture_logs() as logs:
        async with served() as stack:
            headers = _rebinding_headers(stack.port)
            status = await _handshake(stack.port, headers["Host"], headers["Origin"])
    assert status == 421
    assert stack.executor.calls == []
    assert not stack.executor.is_paused
    assert stack.executor.budget_usd is None
    assert [entry["status"] for entry in logs if entry["event"] == "request refused"] == [421]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
async def test_loopback_clients_are_served(host: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            named = host.format(port=stack.port)
            tasks = await _get_as(stack.port, "/api/tasks", {"Host": named})
            # The dashboard page, loaded from this very address, opening its WebSocket.
            page_origin = f"http://{named}"
            status = await _handshake(stack.port, named, page_origin)
    assert tasks.status == 200
    assert [row["task_id"] for row in tasks.json()["tasks"]] == ["t1"]
    assert status == 101


async def test_allow_host_serves_a_proxys_name() -> None:
    config = ServerConfig(port=0, allow_hosts=("runcast.example.com",))
    with trio.fail_after(TIMEOUT):
        async with served(config) as stack:
            proxied = await _get_as(stack.port, "/api/session", {"Host": "runcast.example.com"})
            other = await _get_as(stack.port, "/api/session", {"Host": "attacker.example"})
    assert (proxied.status, other.status) == (200, 421)


async def test_refusals_are_counted_in_the_metrics() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            for path in ("/api/tasks", "/"):
                await _get_as(stack.port, path, _rebinding_headers(stack.port))
            scrape = await http_get(stack.port, "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(scrape.body.decode())}
    samples = {
        sample.labels["status"]: sample.value
        for sample in families["runcast_http_requests_refused"].samples
        if sample.name.endswith("_total")
    }
    assert samples == {"401": 0, "403": 0, "421": 2, "503": 0}
    assert stack.server.refusals.by_status[421] == 2
