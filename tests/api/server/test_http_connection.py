"""One connection served over memory streams, on the mock clock: timeouts and limits."""

from __future__ import annotations

import contextlib

import trio
import trio.testing
from _api_support import parse_reply

from api import RuncastServer, ServerConfig
from broadcaster import SessionBroadcaster
from events import Publisher


def _server(config: ServerConfig) -> RuncastServer:
    publisher = Publisher()
    return RuncastServer(config, publisher, SessionBroadcaster(publisher))


async def _exchange(
    server: RuncastServer, *chunks: bytes, pause: float = 0.0, eof: bool = False
) -> tuple[bytes, float]:
    """Feed ``chunks`` (``pause`` seconds apart); all bytes sent back, and when they ended."""
    client, server_side = trio.testing.memory_stream_pair()

    async def feed() -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            for chunk in chunks:
                await client.send_all(chunk)
                await trio.sleep(pause)
            if eof:
                await client.send_eof()

    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_side)
        nursery.start_soon(feed)
        while data := await client.receive_some(65536):
            received += data
        finished = trio.current_time()
        await client.aclose()
    return bytes(received), finished


async def test_half_sent_head_gets_408_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0, head_timeout=7.0))
    start = trio.current_time()
    data, finished = await _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert parse_reply(data).status == 408
    assert finished - start == 7.0


async def test_trickled_head_cannot_extend_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0, head_timeout=5.0))
    start = trio.current_time()
    trickle = [bytes([b]) for b in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
    data, finished = await _exchange(server, *trickle, pause=1.0)
    assert len(trickle) > 5
    assert parse_reply(data).status == 408
    assert finished - start == 5.0


async def test_complete_head_is_answered_without_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0))
    start = trio.current_time()
    data, finished = await _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert parse_reply(data).status == 200
    assert finished == start


async def test_head_limit_is_configurable(autojump_clock: trio.testing.MockClock) -> None:
    server = _server(ServerConfig(port=0, max_head_bytes=64))
    data, _ = await _exchange(
        server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"p" * 64 + b"\r\n\r\n"
    )
    assert parse_reply(data).status == 431


async def test_peer_closing_without_a_request_gets_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = _server(ServerConfig(port=0))
    start = trio.current_time()
    data, finished = await _exchange(server, eof=True)
    assert data == b""
    assert finished == start

    partial, _ = await _exchange(server, b"GET /healthz HTT", eof=True)
    assert parse_reply(partial).status == 400
