"""Child processes driven over JSON lines on stdin/stdout (servers and load generators)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

REPO = Path(__file__).resolve().parent.parent


class ChildError(RuntimeError):
    """A child process failed, said so, or fell silent."""


@attrs.define(eq=False)
class Child:
    name: str
    process: trio.Process
    #: Seconds a reply may take before the child is taken for hung.
    reply_within: float
    _buffer: bytearray = attrs.field(factory=bytearray)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, message: dict[str, object]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all((json.dumps(message) + "\n").encode())

    async def receive(self, *, within: float | None = None) -> dict[str, Any]:
        """The next message; ``trio.TooSlowError`` after ``within`` (default: the child's)."""
        assert self.process.stdout is not None
        with trio.fail_after(self.reply_within if within is None else within):
            while b"\n" not in self._buffer:
                data = await self.process.stdout.receive_some(65536)
                if not data:
                    raise ChildError(f"{self.name} exited (code {await self.process.wait()})")
                self._buffer += data
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer[:] = rest
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise ChildError(f"{self.name}: {message['error']}")
        return message

    async def ask(self, message: dict[str, object]) -> dict[str, Any]:
        await self.send(message)
        return await self.receive()


@asynccontextmanager
async def open_child(
    name: str, module_args: Sequence[str], *, reply_within: float = 60.0
) -> AsyncIterator[Child]:
    """``python -m MODULE ARGS...`` from the repository root; killed on exit if still alive."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", *module_args],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,  # a child's traceback goes straight to the bench's stderr
    )
    try:
        yield Child(name, process, reply_within)
    finally:
        with trio.CancelScope(shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
