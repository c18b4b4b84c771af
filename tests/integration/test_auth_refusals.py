"""Refusals end to end: a real ``runcast demo`` listening on every address, with tokens,
and one on loopback without a token.

``tests/api/server/test_ws_auth.py`` covers the rules in-process; this runs the console script
(``--host 0.0.0.0``, an operator and a viewer token, JSON logs) and proves, from the
outside, that a missing token, a wrong token, a foreign ``Origin`` and a viewer's
command are each refused, and that each refusal is a structured log line on the
process's stderr naming the reason and the client's own address and port, without
ever logging a token.  The token-less demo (``--host 127.1``, which is loopback too)
refuses a DNS-rebinding page's requests (issue 17) the same way.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import wsproto.events
from _api_support import RawWebSocket, parse_reply
from _runcast_process import RUNCAST

pytestmark = pytest.mark.integration

TIMEOUT = 60
OPERATOR = "op-secret-7f3a"
VIEWER = "view-secret-91c2"
WRONG = "not-the-token-55e0"
SERVING = re.compile(r"dashboard at http://0\.0\.0\.0:(\d+)/")
SERVING_LOOPBACK = re.compile(r"dashboard at http://127\.0\.0\.1:(\d+)/")


@attrs.define(eq=False)
class Demo:
    process: trio.Process
    stdout: bytearray = attrs.field(factory=bytearray)
    stderr: bytearray = attrs.field(factory=bytearray)
    port: int = 0

    def log_lines(self) -> list[dict[str, Any]]:
        lines = self.stderr.decode(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    async def logged(self, event: str, peer: str) -> dict[str, Any]:
        """The log line ``event`` about ``peer``, once the process has written it."""
        while True:
            for line in self.log_lines():
                if line.get("event") == event and line.get("peer") == peer:
                    return line
            await trio.sleep(0.02)


async def _collect(stream: trio.abc.ReceiveStream | None, into: bytearray) -> None:
    assert stream is not None
    while chunk := await stream.receive_some(65536):
        into += chunk


@asynccontextmanager
async def demo_on_every_address(tmp_path: Path) -> AsyncIterator[Demo]:
    argv = ["--host", "0.0.0.0", "--auth-token", OPERATOR, "--viewer-token", VIEWER]
    async with running_demo(tmp_path, argv, SERVING) as demo:
        yield demo


@asynccontextmanager
async def running_demo(
    tmp_path: Path, options: list[str], serving: re.Pattern[str]
) -> AsyncIterator[Demo]:
    argv = [RUNCAST, "demo", "--port", "0", "--seed", "3", "--log-json", *options]
    process = await trio.lowlevel.open_process(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    demo = Demo(process)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, process.stdout, demo.stdout)
        nursery.start_soon(_collect, process.stderr, demo.stderr)
        try:
            while not (match := serving.search(demo.stdout.decode(errors="replace"))):
                assert process.returncode is None, demo.stderr.decode()
                await trio.sleep(0.02)
            demo.port = int(match.group(1))
            yield demo
        finally:
            process.send_signal(signal.SIGINT)
            with trio.move_on_after(15):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def connect(port: int) -> tuple[trio.SocketStream, str]:
    """A connection to the demo and the ``host:port`` the server sees it from."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    host, local_port = stream.socket.getsockname()[:2]
    return stream, f"{host}:{local_port}"


async def handshake_status(
    port: int, target: str, headers: list[tuple[str, str]]
) -> tuple[int, str]:
    stream, peer = await connect(port)
    async with stream:
        raw = RawWebSocket(stream)
        extra = [(name.encode(), value.encode()) for name, value in headers]
        await raw.send(
            wsproto.events.Request(host=f"127.0.0.1:{port}", target=target, extra_headers=extra)
        )
        answer = await raw.next_event()
    if isinstance(answer, wsproto.events.AcceptConnection):
        return 101, peer
    assert isinstance(answer, wsproto.events.RejectConnection), answer
    return answer.status_code, peer


async def http_status(port: int, target: str, headers: dict[str, str]) -> tuple[int, str]:
    stream, peer = await connect(port)
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = bytearray()
        while chunk := await stream.receive_some(65536):
            answer += chunk
    return parse_reply(bytes(answer)).status, peer


async def viewer_command(port: int) -> tuple[dict[str, Any], str]:
    stream, peer = await connect(port)
    async with stream:
        raw = RawWebSocket(stream)
        await raw.handshake(f"/ws?token={VIEWER}", host=f"127.0.0.1:{port}")
        command = {"type": "command", "action": "pause", "task_id": "*"}
        await raw.send(wsproto.events.TextMessage(json.dumps(command)))
        while True:
            message = await raw.next_event()
            assert isinstance(message, wsproto.events.TextMessage), message
            reply = json.loads(message.data)
            if reply["type"] not in ("event", "gap"):
                break
        await raw.send(wsproto.events.CloseConnection(code=1000))
    return reply, peer


async def test_every_refusal_is_answered_and_logged_with_the_peer(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with demo_on_every_address(tmp_path) as demo:
            port = demo.port
            refusals = {
                "no token": await handshake_status(port, "/ws", []),
                "wrong token": await handshake_status(port, f"/ws?token={WRONG}", []),
                "wrong bearer": await http_status(
                    port, "/api/session", {"Authorization": f"Bearer {WRONG}"}
                ),
                "foreign origin": await handshake_status(
                    port, f"/ws?token={OPERATOR}", [("Origin", "http://evil.example")]
                ),
            }
            logged = {
                case: await demo.logged("request refused", peer)
                for case, (_, peer) in refusals.items()
            }
            reply, viewer_peer = await viewer_command(port)
            command_refused = await demo.logged("command refused", viewer_peer)
            accepted, operator_peer = await handshake_status(
                port, "/ws", [("Authorization", f"Bearer {OPERATOR}")]
            )
            log_text = demo.stderr.decode(errors="replace")
            carried_out = [
                line
                for line in demo.log_lines()
                if line.get("event") == "command" and line.get("peer") == viewer_peer
            ]
    assert {case: status for case, (status, _) in refusals.items()} == {
        "no token": 401,
        "wrong token": 401,
        "wrong bearer": 401,
        "foreign origin": 403,
    }
    assert "token is required" in logged["no token"]["reason"]
    assert "not valid" in logged["wrong token"]["reason"]
    assert "not valid" in logged["wrong bearer"]["reason"]
    assert "evil.example" in logged["foreign origin"]["reason"]
    for case, line in logged.items():
        assert line["level"] == "warning", line
        assert line["status"] == refusals[case][0]
    assert reply["type"] == "error"
    assert "forbidden" in reply["error"]
    assert command_refused["action"] == "pause"
    assert command_refused["role"] == "viewer"
    assert carried_out == []
    # The control: a good token is let in and nothing about it is refused.
    assert accepted == 101
    assert operator_peer not in {line["peer"] for line in logged.values()}
    for secret in (OPERATOR, VIEWER, WRONG):
        assert secret not in log_text, "a token reached the log"


async def raw_get(port: int, target: str, headers: dict[str, str]) -> tuple[bytes, str]:
    """The whole answer to a GET sent with exactly ``headers`` (``Host`` included)."""
    stream, peer = await connect(port)
    lines = [f"GET {target} HTTP/1.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = bytearray()
        while chunk := await stream.receive_some(65536):
            answer += chunk
    return bytes(answer), peer


async def test_a_rebinding_page_is_refused_by_a_tokenless_demo(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with running_demo(tmp_path, ["--host", "127.1"], SERVING_LOOPBACK) as demo:
            port = demo.port
            rebound = {
                "Host": f"attacker.example:{port}",
                "Origin": f"http://attacker.example:{port}",
            }
            answers = {
                path: await raw_get(port, path, rebound) for path in ("/api/tasks", "/metrics", "/")
            }
            stream, ws_peer = await connect(port)
            async with stream:
                raw = RawWebSocket(stream)
                await raw.send(
                    wsproto.events.Request(
                        host=rebound["Host"],
                        target="/ws",
                        extra_headers=[(b"Origin", rebound["Origin"].encode())],
                    )
                )
                rejected = await raw.next_event()
            logged = [await demo.logged("request refused", peer) for _, peer in answers.values()]
            logged.append(await demo.logged("request refused", ws_peer))
            own, _ = await raw_get(port, "/api/session", {"Host": f"127.0.0.1:{port}"})
    for answer, _ in answers.values():
        reply = parse_reply(answer)
        assert reply.status == 421
        assert b"attacker.example" in reply.body
        assert b"task" not in reply.body.lower()  # no task list, no command line
    assert isinstance(rejected, wsproto.events.RejectConnection)
    assert rejected.status_code == 421
    for line in logged:
        assert (line["level"], line["status"]) == ("warning", 421)
        assert f"Host 'attacker.example:{port}'" in line["reason"]
    assert [line["path"] for line in logged] == ["/api/tasks", "/metrics", "/", "/ws"]
    session = parse_reply(own)
    assert session.status == 200
    assert session.json()["is_paused"] is False
