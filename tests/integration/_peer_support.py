"""Real peers of a real ``runcast demo``: start processes that are always cleaned up.

Every process started here is stopped when its block ends, even when the test
failed or timed out: first politely (SIGINT, so runcast shuts down as users see
it), then with SIGKILL after a bounded wait.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio
from _api_support import HttpReply, http_get
from _runcast_process import RUNCAST, URL

T = TypeVar("T")

#: Seconds a stopped process may take to exit before it is killed.
STOP_GRACE = 10.0


@attrs.define(eq=False)
class PeerProcess:
    """A child process with its stdout and stderr collected as they arrive."""

    process: trio.Process
    stdout: bytearray = attrs.field(factory=bytearray)
    stderr: bytearray = attrs.field(factory=bytearray)

    async def collect(self, stream: trio.abc.ReceiveStream | None, into: bytearray) -> None:
        assert stream is not None
        while chunk := await stream.receive_some(65536):
            into += chunk

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    def describe(self) -> str:
        """What the process said, for assertion messages."""
        return (
            f"exit status {self.process.returncode}\n"
            f"stdout:\n{self.stdout.decode(errors='replace')[-4000:]}\n"
            f"stderr:\n{self.stderr.decode(errors='replace')[-4000:]}"
        )


@attrs.define(eq=False)
class DemoProcess(PeerProcess):
    """A ``runcast demo`` serving on a loopback port of its own choosing."""

    port: int = 0
    token: str = ""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def get(self, target: str, headers: dict[str, str] | None = None) -> HttpReply:
        """``GET target`` from the demo with its operator token."""
        return await http_get(self.port, target, headers={**self.auth_headers(), **(headers or {})})

    async def session(self) -> dict[str, Any]:
        reply = await self.get("/api/session")
        assert reply.status == 200, reply
        session = reply.json()
        assert isinstance(session, dict)
        return session

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (``--log-json``) written so far."""
        records = []
        for line in self.stderr.decode(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                assert isinstance(record, dict)
                records.append(record)
        return records


async def _stop(peer: PeerProcess, signum: signal.Signals) -> None:
    """Ask ``peer`` to stop with ``signum``; kill it if it has not exited in time."""
    with trio.CancelScope(shield=True):
        if not peer.exited:
            peer.process.send_signal(signum)
            with trio.move_on_after(STOP_GRACE):
                await peer.process.wait()
        if not peer.exited:
            peer.process.kill()
            await peer.process.wait()


@asynccontextmanager
async def _supervised(peer: PeerProcess, stop_signal: signal.Signals) -> AsyncIterator[None]:
    """Collect ``peer``'s output for the block, then stop it (kill it if need be)."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.collect, peer.process.stdout, peer.stdout)
            nursery.start_soon(peer.collect, peer.process.stderr, peer.stderr)
            try:
                yield
            finally:
                await _stop(peer, stop_signal)
    finally:
        await _stop(peer, signal.SIGKILL)


async def _open(argv: list[str], cwd: Path) -> trio.Process:
    return await trio.lowlevel.open_process(
        argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@asynccontextmanager
async def running(
    argv: list[str], *, cwd: Path, stop_signal: signal.Signals
) -> AsyncIterator[PeerProcess]:
    """Run ``argv`` for the block, stopped with ``stop_signal`` (then SIGKILL) at the end."""
    peer = PeerProcess(await _open(argv, cwd))
    async with _supervised(peer, stop_signal):
        yield peer


@asynccontextmanager
async def serving_demo(cwd: Path, *args: str, token: str = "") -> AsyncIterator[DemoProcess]:
    """``runcast demo ARGS --port 0 --log-json`` (with ``--auth-token`` if given).

    Returns once the demo says where it serves; SIGINT then SIGKILL at the end.
    """
    argv = [RUNCAST, "demo", *args, "--port", "0", "--log-json"]
    if token:
        argv += ["--auth-token", token]
    demo = DemoProcess(await _open(argv, cwd), token=token)
    async with _supervised(demo, signal.SIGINT):
        demo.port = await _served_port(demo)
        yield demo


async def _served_port(demo: DemoProcess) -> int:
    while not (match := URL.search(demo.stdout.decode(errors="replace"))):
        if demo.exited:
            raise AssertionError(f"runcast demo exited before serving: {demo.describe()}")
        await trio.sleep(0.05)
    return int(match.group(1))


def free_loopback_port() -> int:
    """A port nothing listens on right now, for a peer that cannot be told to pick one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def poll_until(probe: Callable[[], Awaitable[T | None]], interval: float = 0.2) -> T:
    """The first result of ``probe()`` that is not None; callers bound the wait."""
    while True:
        if (result := await probe()) is not None:
            return result
        await trio.sleep(interval)
