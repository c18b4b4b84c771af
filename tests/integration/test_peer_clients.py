"""WebSocket clients we did not write talk to a real ``runcast demo``.

The ``websockets`` library (asyncio, in a subprocess so it never meets trio) and
Node's ``ws`` package each play the same scripted conversation: subscribe, get
the reply and the snapshot, see live events, pause and resume with the operator
token (one command sent in fragments), send bad messages, then close with 1000.
The clients only drive and record; this test judges their transcripts and what
the server says about them (its log and ``/metrics``).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from _peer_support import DemoProcess, poll_until, serving_demo
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
NODE = shutil.which("node")
NODE_CLIENT = HERE / "node" / "client.mjs"
NODE_WS = HERE / "node" / "node_modules" / "ws" / "package.json"
ASYNCIO_CLIENT = HERE / "peers" / "asyncio_ws_client.py"

TOKEN = "peer-operator-secret"
BUDGET_USD = 1000.0  # never exhausted, so only our commands pause the demo
TIMEOUT = 60
STEP_TIMEOUT = 20.0
CLOSE = {"code": 1000, "reason": "peer done"}

PAUSE = json.dumps({"type": "command", "action": "pause", "task_id": "*"})
RESUME = json.dumps({"type": "command", "action": "resume", "task_id": "*"})
UNKNOWN_ACTION = json.dumps({"type": "command", "action": "explode", "task_id": "*"})
NOT_JSON = '{"type": "subscribe", '
PING = json.dumps({"type": "ping"})


def _event(name: str, **data: object) -> dict[str, object]:
    return {"type": "event", "event": name, **{f"data.{k}": v for k, v in data.items()}}


STEPS: list[dict[str, Any]] = [
    {"send": json.dumps({"type": "subscribe", "task_id": "*"})},
    {"expect": [{"type": "subscribed", "task_id": "*"}]},
    {"expect": [_event("session_update")]},
    {"expect": [_event("task_usage")]},
    {"send_fragments": [PAUSE[:10], PAUSE[10:25], PAUSE[25:]]},
    {
        "expect": [
            {"type": "command_result", "action": "pause", "status": "paused"},
            _event("executor_paused", by="operator"),
            _event("session_update", is_paused=True),
        ]
    },
    {"send": RESUME},
    {
        "expect": [
            {"type": "command_result", "action": "resume", "status": "resumed"},
            _event("executor_resumed", by="operator"),
            _event("session_update", is_paused=False),
        ]
    },
    {"send": NOT_JSON},
    {"expect": [{"type": "error"}]},
    {"send_binary": PING},
    {"expect": [{"type": "error"}]},
    {"send": UNKNOWN_ACTION},
    {"expect": [{"type": "error"}]},
    {"send": PING},
    {"expect": [{"type": "pong"}]},
    {"close": CLOSE},
]


def _asyncio_argv() -> list[str]:
    return [sys.executable, str(ASYNCIO_CLIENT)]


def _node_argv() -> list[str]:
    if NODE is None:
        pytest.skip("node is not installed (./scripts/ensure-system-deps installs nodejs)")
    if not NODE_WS.exists():
        pytest.skip("the ws package is not installed (./scripts/ensure-system-deps runs npm ci)")
    return [NODE, str(NODE_CLIENT)]


PEERS: dict[str, Callable[[], list[str]]] = {"websockets": _asyncio_argv, "node-ws": _node_argv}


async def _converse(argv: list[str], demo: DemoProcess) -> list[dict[str, Any]]:
    """Run the scripted client against ``demo``; its transcript, one record a line."""
    plan = {
        "url": f"ws://127.0.0.1:{demo.port}/ws",
        "token": demo.token,
        "timeout": STEP_TIMEOUT,
        "steps": STEPS,
    }
    result = await trio.run_process(
        argv,
        stdin=json.dumps(plan).encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    lines = result.stdout.decode().splitlines()
    transcript = [json.loads(line) for line in lines]
    said = f"exit {result.returncode}\n{result.stdout.decode()[-6000:]}\n{result.stderr.decode()}"
    assert result.returncode == 0, said
    assert not any("fail" in record for record in transcript), said
    return transcript


def _first_after(
    transcript: list[dict[str, Any]], start: int, wanted: Callable[[dict[str, Any]], bool]
) -> int:
    """Where the first frame received after ``start`` that is ``wanted`` sits."""
    for position in range(start + 1, len(transcript)):
        frame = transcript[position].get("recv")
        if frame is not None and wanted(frame):
            return position
    raise AssertionError(f"no such frame after record {start}")


def _reply(transcript: list[dict[str, Any]], sent: dict[str, Any], kind: str) -> dict[str, Any]:
    """The first frame of type ``kind`` received after the ``sent`` record."""
    position = _first_after(transcript, transcript.index(sent), lambda f: f.get("type") == kind)
    frame: dict[str, Any] = transcript[position]["recv"]
    return frame


def _is_event(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("type") == "event" and frame.get("event") == name


def _update_with(*, is_paused: bool) -> Callable[[dict[str, Any]], bool]:
    def wanted(frame: dict[str, Any]) -> bool:
        return _is_event("session_update")(frame) and frame["data"]["is_paused"] is is_paused

    return wanted


def _check_transcript(transcript: list[dict[str, Any]]) -> None:
    assert transcript[0]["opened"]["status"] == 101
    frames = [record["recv"] for record in transcript if "recv" in record]

    # The reply first, then the snapshot, then live events, in seq order.
    assert frames[0] == {"type": "subscribed", "task_id": "*", "since": None}
    snapshot = frames[1]
    assert snapshot["event"] == "session_update"
    assert snapshot["task_id"] == "*"
    assert snapshot["data"]["is_paused"] is False
    assert snapshot["data"]["budget_usd"] == BUDGET_USD
    assert snapshot["data"]["session_id"]
    seqs = [frame["seq"] for frame in frames if frame["type"] == "event"]
    assert seqs == sorted(set(seqs)), "event seqs must strictly increase"
    usage = next(frame for frame in frames if frame.get("event") == "task_usage")
    assert usage["seq"] > snapshot["seq"]
    assert usage["data"]["model"]

    for command, done, paused in (
        (PAUSE, "executor_paused", True),
        (RESUME, "executor_resumed", False),
    ):
        result = _reply(transcript, {"sent": command}, "command_result")
        assert result["status"] == ("paused" if paused else "resumed"), result
        sent = transcript.index({"sent": command})
        happened = _first_after(transcript, sent, _is_event(done))
        assert transcript[happened]["recv"]["data"]["by"] == "operator"
        _first_after(transcript, sent, _update_with(is_paused=paused))

    # Each bad message gets its own error reply, and the connection stays open.
    errors = [
        _reply(transcript, sent, "error")["error"]
        for sent in ({"sent": NOT_JSON}, {"sent_binary": PING}, {"sent": UNKNOWN_ACTION})
    ]
    assert errors[0].startswith("message is not valid JSON"), errors
    assert errors[1].startswith("binary frames are not accepted"), errors
    assert errors[2].startswith('action: unknown action "explode"'), errors
    assert _reply(transcript, {"sent": PING}, "pong") == {"type": "pong"}

    # The server answered our close frame with the same code and reason.
    assert transcript[-1] == {"closed": CLOSE}


async def _server_saw_a_clean_close(demo: DemoProcess) -> None:
    async def no_connections() -> bool | None:
        body = (await demo.get("/metrics")).body.decode()
        families = {family.name: family for family in text_string_to_metric_families(body)}
        connections = families["runcast_websocket_connections"].samples[0].value
        return connections == 0 or None

    await poll_until(no_connections)
    records = demo.log_records()
    connected = [r for r in records if r["event"] == "websocket connected"]
    closed = [r for r in records if r["event"] == "websocket closed"]
    commands = [r["action"] for r in records if r["event"] == "command"]
    assert [r["role"] for r in connected] == ["operator"]
    assert [(r["code"], r["peer_code"]) for r in closed] == [(1000, 1000)]
    assert commands == ["pause", "resume"]


@pytest.mark.parametrize("peer", sorted(PEERS))
async def test_peer_client_subscribes_commands_and_closes_cleanly(
    tmp_path: Path, peer: str
) -> None:
    argv = PEERS[peer]()
    with trio.fail_after(TIMEOUT):
        async with serving_demo(
            tmp_path,
            *("--interval", "1", "--seed", "9", "--budget-usd", str(BUDGET_USD)),
            token=TOKEN,
        ) as demo:
            transcript = await _converse(argv, demo)
            _check_transcript(transcript)
            await _server_saw_a_clean_close(demo)
        assert demo.process.returncode == 0, demo.describe()
