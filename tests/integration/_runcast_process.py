"""Start the real ``runcast`` console script as a subprocess and talk to it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import trio

RUNCAST = str(Path(sys.executable).parent / "runcast")
URL = re.compile(r"dashboard at http://127\.0\.0\.1:(\d+)/")


@attrs.define(eq=False)
class RuncastProcess:
    """A running ``runcast`` with its stdout collected line by line."""

    process: trio.Process
    stdout: bytearray = attrs.field(factory=bytearray)
    stderr: bytearray = attrs.field(factory=bytearray)
    port: int = 0

    async def _read_until_port(self) -> None:
        assert self.process.stdout is not None
        while not (match := URL.search(self.stdout.decode(errors="replace"))):
            chunk = await self.process.stdout.receive_some(4096)
            if not chunk:
                raise AssertionError(f"runcast exited before serving: {self.stderr.decode()}")
            self.stdout += chunk
        self.port = int(match.group(1))

    async def _collect(self, stream: trio.abc.ReceiveStream | None, into: bytearray) -> None:
        assert stream is not None
        while chunk := await stream.receive_some(65536):
            into += chunk

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def wait(self) -> int:
        return await self.process.wait()

    @property
    def output(self) -> str:
        return self.stdout.decode()


async def start_runcast(nursery: trio.Nursery, *args: str, cwd: Path) -> RuncastProcess:
    """Start ``runcast ARGS --port 0`` and return once it says where it listens."""
    process = await trio.lowlevel.open_process(
        [RUNCAST, *args, "--port", "0", "--log-json"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    runcast = RuncastProcess(process)
    nursery.start_soon(runcast._collect, process.stderr, runcast.stderr)
    await runcast._read_until_port()
    nursery.start_soon(runcast._collect, process.stdout, runcast.stdout)
    return runcast


async def run_to_end(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``runcast ARGS`` to completion: exit code, stdout, stderr."""
    result = await trio.run_process(
        [RUNCAST, *args], cwd=cwd, capture_stdout=True, capture_stderr=True, check=False
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()
