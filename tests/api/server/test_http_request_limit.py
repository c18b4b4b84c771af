"""At most ``max_http_requests`` plain HTTP requests at once; the next gets 503 (issue 17).

Over memory streams on the mock clock: a lockstep stream whose client does not read
keeps its request in flight (the answer cannot be written), deterministically.
"""

from __future__ import annotations

import contextlib

import structlog
import trio
import trio.testing
from _api_support import HttpReply, parse_reply

from api import RuncastServer, ServerConfig
from broadcaster import SessionBroadcaster
from events import Publisher

SESSION = b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _server(config: ServerConfig) -> RuncastServer:
    publisher = Publisher()
    return RuncastServer(config, publisher, SessionBroadcaster(publisher))


async def _read_all(stream: trio.abc.Stream) -> HttpReply:
    received = bytearray()
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while data := await stream.receive_some(65536):
            received += data
    await stream.aclose()
    return parse_reply(bytes(received))


async def _exchange(nursery: trio.Nursery, server: RuncastServer, head: bytes) -> HttpReply:
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_connection, server_side)
    await client.send_all(head)
    return await _read_all(client)


async def _unread_request(nursery: trio.Nursery, server: RuncastServer) -> trio.abc.Stream:
    """A request whose answer waits for a client that does not read (yet)."""
    client, server_side = trio.testing.lockstep_stream_pair()
    nursery.start_soon(server.handle_connection, server_side)
    await client.send_all(SESSION)
    return client


async def test_requests_over_the_limit_get_503_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0, max_http_requests=2))
    with structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            held = [await _unread_request(nursery, server) for _ in range(2)]
            await trio.testing.wait_all_tasks_blocked()
            assert server.http_requests_in_flight == 2
            refused = await _exchange(nursery, server, SESSION)
            health = await _exchange(nursery, server, HEALTH)
            answered = [await _read_all(stream) for stream in held]
            assert server.http_requests_in_flight == 0
            after = await _exchange(nursery, server, SESSION)
    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert b"too many requests at once (the limit is 2)" in refused.body
    assert health.status == 200  # a probe still sees the loop alive
    assert [reply.status for reply in answered] == [200, 200]
    assert after.status == 200
    assert server.refusals.by_status[503] == 1
    warnings = [entry for entry in logs if entry["event"] == "request refused"]
    assert [(w["status"], w["path"]) for w in warnings] == [(503, "/api/session")]


async def test_a_failing_request_gives_its_place_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0, max_http_requests=1))
    async with trio.open_nursery() as nursery:
        bad = await _exchange(
            nursery, server, b"GET /api/tasks?limit=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        missing = await _exchange(
            nursery, server, b"GET /static/nope.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        good = await _exchange(nursery, server, SESSION)
    assert (bad.status, missing.status, good.status) == (400, 404, 200)
    assert server.http_requests_in_flight == 0
