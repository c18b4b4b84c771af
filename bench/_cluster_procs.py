"""The cluster benchmark's processes: job files, ``runcast worker``/``serve``/``submit``/``run``.

Every process is the console script as an operator runs it, its stdout and stderr
in a log file of its own (JSON log lines, ``--log-json``), read back by polling:
what a worker logs (``worker started``, ``control`` with its timestamp) is what
the benchmark observes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import redis
import trio

from ._startup import runcast_command

#: How long a process may take to say it is ready.
READY_WITHIN_SECONDS = 30.0
WEBSOCKET_LINE = re.compile(r"WebSocket at (ws://\S+)")


class ClusterBenchError(RuntimeError):
    """A process of the cluster benchmark failed, or did not do what was measured."""


def usage_line(index: int) -> str:
    """One usage line as a task prints it (docs/jobfiles.md): priced by its own cost."""
    record = {
        "usage": {"input_tokens": 100 + index, "output_tokens": 10},
        "model": "bench-model",
        "cost_usd": 0.0001,
    }
    return json.dumps(record, separators=(",", ":"))


def _toml_list(argv: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(arg) for arg in argv) + "]"


def write_job(path: Path, commands: Sequence[Sequence[str]]) -> Path:
    lines: list[str] = []
    for index, argv in enumerate(commands):
        lines += ["[[task]]", f'id = "t{index}"', f"command = {_toml_list(argv)}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def printf_command(usage_lines: int) -> list[str]:
    """A trivial command: ``printf`` writes ``usage_lines`` usage lines in one write."""
    text = "".join(usage_line(n).replace("%", "%%") + "\\n" for n in range(usage_lines))
    return ["printf", text]


def paced_command(lines: int, every_seconds: float) -> list[str]:
    """A command printing ``lines`` usage lines, one every ``every_seconds`` (one event each)."""
    code = (
        "import sys, time\n"
        f"line = {usage_line(0)!r} + '\\n'\n"
        f"for _ in range({lines}):\n"
        "    sys.stdout.write(line); sys.stdout.flush(); time.sleep(" + repr(every_seconds) + ")\n"
    )
    return [sys.executable, "-I", "-S", "-c", code]


@attrs.define(eq=False)
class Proc:
    """One ``runcast`` process and its log file."""

    name: str
    process: trio.Process
    log: Path
    _read: int = 0
    _partial: str = ""

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def new_records(self) -> Iterator[dict[str, Any]]:
        """The JSON log lines written since the last call (other lines skipped)."""
        with self.log.open("r", errors="replace") as handle:
            handle.seek(self._read)
            chunk = handle.read()
            self._read = handle.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith("{"):
                yield json.loads(line)

    async def wait_for(self, pattern: str, *, within: float = READY_WITHIN_SECONDS) -> str:
        """The first match of ``pattern`` in the log; fails if the process exits first."""
        with trio.move_on_after(within):
            while True:
                found = re.search(pattern, self.text())
                if found:
                    return found.group(0)
                if self.process.poll() is not None:
                    raise ClusterBenchError(
                        f"{self.name} exited {self.process.returncode}: {self.text()[-2000:]}"
                    )
                await trio.sleep(0.02)
        raise ClusterBenchError(f"{self.name}: no {pattern!r} within {within} s")

    async def stop(self) -> int:
        """SIGTERM (a second one after 10 s), SIGKILL after 20 s; the exit code."""
        with trio.CancelScope(shield=True):
            for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
                if self.process.returncode is not None:
                    break
                self.process.send_signal(sig)
                with trio.move_on_after(10):
                    await self.process.wait()
            code = await self.process.wait()
        return code


@asynccontextmanager
async def started(directory: Path, name: str, args: Sequence[str]) -> AsyncIterator[Proc]:
    """``runcast ARGS`` with its output in ``directory/NAME.log``; stopped on exit."""
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            [*runcast_command(), *args],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(name, process, log)
    try:
        yield proc
    finally:
        await proc.stop()


def worker_args(url: str, session: str, name: str, concurrency: int, *extra: str) -> list[str]:
    return [
        *("worker", "--redis", url, "--session", session, "--name", name),
        *("--concurrency", str(concurrency), "--log-json", *extra),
    ]


def serve_args(url: str, session: str) -> list[str]:
    return [
        *("serve", "--redis", url, "--session", session, "--port", "0"),
        *("--no-record", "--log-json", "--log-level", "warning"),
    ]


async def run_to_end(directory: Path, args: Sequence[str], *, within: float = 600.0) -> float:
    """Run ``runcast ARGS`` to its exit (0 expected); its wall seconds."""
    started_at = time.perf_counter()
    with trio.fail_after(within):
        finished = await trio.run_process(
            [*runcast_command(), *args],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    took = time.perf_counter() - started_at
    if finished.returncode != 0:
        output = (finished.stdout + finished.stderr).decode(errors="replace")
        raise ClusterBenchError(f"runcast {args[0]} exited {finished.returncode}: {output[-2000:]}")
    return took


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of a live process and of its children it has reaped (``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14-17 of stat(5), here after the name.
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(url: str) -> float:
    """The redis-server's own CPU seconds (``INFO cpu``: user + sys)."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run_with_rusage(directory: Path, args: Sequence[str]) -> tuple[float, float]:
    """``runcast ARGS`` to its exit (0 expected): wall seconds, and CPU seconds of the
    process with its tasks (``wait4``); blocking, run it in a thread."""
    log = directory / "run.log"
    started_at = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*runcast_command(), *args],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
    took = time.perf_counter() - started_at
    process.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here
    if code != 0:
        text = log.read_text(errors="replace")
        raise ClusterBenchError(f"runcast {args[0]} exited {code}: {text[-2000:]}")
    return took, usage.ru_utime + usage.ru_stime


def log_time(record: dict[str, Any]) -> float:
    """A JSON log line's timestamp (structlog's ISO UTC) as Unix seconds."""
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
