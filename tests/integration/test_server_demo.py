"""``runcast demo`` as users run it: served over loopback, live, commanded, stopped by signal."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import trio
from _api_support import RawWebSocket, http_get
from _runcast_process import run_to_end, start_runcast
from prometheus_client.parser import text_string_to_metric_families
from wsproto.events import CloseConnection, TextMessage

pytestmark = pytest.mark.integration

TIMEOUT = 60


async def _send(raw: RawWebSocket, frame: dict[str, Any]) -> None:
    await raw.send(TextMessage(json.dumps(frame)))


async def _next_frame(raw: RawWebSocket, accept: set[str]) -> dict[str, Any]:
    """The next text frame whose ``type`` (or, for events, ``event``) is in ``accept``."""
    while True:
        event = await raw.next_event()
        assert isinstance(event, TextMessage), event
        frame = json.loads(event.data)
        assert isinstance(frame, dict)
        if frame["type"] in accept or frame.get("event") in accept:
            return frame


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_demo_serves_live_updates_obeys_and_stops_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            demo = await start_runcast(
                nursery, "demo", "--interval", "1", "--seed", "3", cwd=tmp_path
            )
            async with await trio.open_tcp_stream("127.0.0.1", demo.port) as stream:
                raw = RawWebSocket(stream)
                await raw.handshake(host=f"127.0.0.1:{demo.port}")
                await _send(raw, {"type": "subscribe", "task_id": "*"})
                await _next_frame(raw, {"subscribed"})
                snapshot = await _next_frame(raw, {"session_update"})
                assert snapshot["data"]["budget_usd"] == 0.5
                usage = await _next_frame(raw, {"task_usage"})
                assert usage["data"]["model"]
                ticked = await _next_frame(raw, {"session_update"})
                assert ticked["data"]["total_tokens"] > 0

                await _send(raw, {"type": "command", "action": "pause", "task_id": "*"})
                assert (await _next_frame(raw, {"command_result"}))["status"] == "paused"
                paused = await _next_frame(raw, {"executor_paused"})
                assert paused["data"]["by"] == "operator"
                assert (await http_get(demo.port, "/api/session")).json()["is_paused"] is True

                metrics = (await http_get(demo.port, "/metrics")).body.decode()
                families = {f.name: f for f in text_string_to_metric_families(metrics)}
                assert families["runcast_websocket_connections"].samples[0].value == 1
                assert families["runcast_executor_paused"].samples[0].value == 1

                demo.signal(signum)
                while not isinstance(event := await raw.next_event(), CloseConnection):
                    pass
                assert event.code == 1001
                await raw.send(event.response())
            assert await demo.wait() == 0
    assert "dashboard at http://127.0.0.1:" in demo.output
    assert "stopping the demo" in demo.stderr.decode()


async def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        try:
            code, out, err = await run_to_end("demo", "--port", str(port), cwd=tmp_path)
        finally:
            for listener in listeners:
                await listener.aclose()
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in err
    assert "dashboard at" not in out
