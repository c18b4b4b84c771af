"""A throwaway ``redis-server`` on a free loopback port, in a temporary directory.

No persistence (``--save ""``, no AOF): the Redis benchmarks measure the client
libraries, not the disk. The server is stopped (SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

#: How long a fresh server may take to accept a connection.
START_WITHIN_SECONDS = 10.0
#: A free port found by binding port 0 may be taken before the server binds it.
START_ATTEMPTS = 3


class RedisServerError(RuntimeError):
    """``redis-server`` is missing, or did not start."""


@attrs.frozen
class RedisServer:
    host: str
    port: int
    version: str


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RedisServerError(
            "redis-server is not installed (Debian package 'redis-server'; "
            "./scripts/ensure-system-deps installs it)"
        )
    return found


@asynccontextmanager
async def running_redis_server() -> AsyncIterator[RedisServer]:
    binary = redis_server_binary()
    version = await _version(binary)
    with tempfile.TemporaryDirectory(prefix="runcast-bench-redis-") as scratch:
        for attempt in range(1, START_ATTEMPTS + 1):
            port = _free_port()
            process = await trio.lowlevel.open_process(
                _argv(binary, port, Path(scratch)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                if await _accepting(process, port):
                    yield RedisServer("127.0.0.1", port, version)
                    return
            finally:
                await _stop(process)
            if attempt == START_ATTEMPTS:
                log = (Path(scratch) / "redis.log").read_text(errors="replace")
                raise RedisServerError(
                    f"redis-server did not start after {START_ATTEMPTS} attempts; "
                    f"its log ends:\n{log[-2000:]}"
                )


def _argv(binary: str, port: int, scratch: Path) -> list[str]:
    return [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(scratch),
        "--logfile",
        str(scratch / "redis.log"),
        "--save",
        "",
        "--appendonly",
        "no",
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _accepting(process: trio.Process, port: int) -> bool:
    """True once the server takes a TCP connection; False if it exited first."""
    with trio.move_on_after(START_WITHIN_SECONDS):
        while process.poll() is None:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.02)
                continue
            await stream.aclose()
            return True
    return False


async def _stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _version(binary: str) -> str:
    finished = await trio.run_process([binary, "--version"], capture_stdout=True)
    words = finished.stdout.decode(errors="replace").split()
    return next((word[2:] for word in words if word.startswith("v=")), "unknown")
