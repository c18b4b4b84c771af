"""Start-up when there is something to draw: ``status`` and ``watch`` on a terminal.

The start-up benchmark (``_startup``) stops at "connection refused", before a
command draws anything; the tables are drawn with rich, which is imported only
then. This part runs against a live server (``runcast run`` of a job file of
``TASKS`` quick tasks, ``--keep-serving``) and times:

- ``status`` on a pseudo-terminal (drawn with rich) and piped (plain text), to
  its exit;
- ``watch`` on a pseudo-terminal, to its first screen (its first frame written),
  then it is killed.

Each against ``python -c "import trio, trio_websocket"`` run just before it, as
in ``_startup``: the figure is the median of the per-pair ratios of wall time.
A live server adds a WebSocket connect and an HTTP request (loopback, a few ms)
to what is measured: the figure is start-up and first answer together.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from ._report import median

TASKS = 20
#: The pseudo-terminal's size (rows, columns), as an operator's window might be.
WINDOW = (40, 160)
#: What ``watch`` writes once its first screen is drawn (the row count's line).
FIRST_SCREEN = b"running tasks: "
SERVED = re.compile(rb"dashboard at http://127\.0\.0\.1:(\d+)/")
SERVER_START_TIMEOUT = 30.0
DRAWN_COMMANDS = ("status, terminal", "status, piped", "watch, terminal")
COMMAND_TIMEOUT = 30.0


@attrs.frozen
class Timed:
    wall_seconds: float
    exit_code: int | None  # None: killed once it had drawn (watch)
    output: bytes


def _job_file(directory: Path) -> Path:
    path = directory / "drawn.toml"
    tasks = "".join(f'[[task]]\nid = "task-{n:02d}"\ncommand = ["true"]\n\n' for n in range(TASKS))
    path.write_text(f"concurrency = 4\n\n{tasks}")
    return path


@contextmanager
def live_server(runcast: list[str]) -> Iterator[str]:
    """A ``runcast run --keep-serving`` of ``TASKS`` tasks; yields its WebSocket URL."""
    with tempfile.TemporaryDirectory() as scratch:
        argv = [
            *runcast,
            "run",
            str(_job_file(Path(scratch))),
            "--keep-serving",
            "--store",
            ":memory:",
            "--port",
            "0",
            "--log-json",
        ]
        server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            yield f"ws://127.0.0.1:{_served_port(server)}/ws"
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _served_port(server: subprocess.Popen[bytes]) -> int:
    assert server.stdout is not None
    seen = b""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not (match := SERVED.search(seen)):
        line = server.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: {seen.decode(errors='replace')}")
        seen += line
    return int(match.group(1))


def _open_terminal() -> tuple[int, int]:
    """A pseudo-terminal (master, slave) of ``WINDOW``'s size."""
    master, slave = pty.openpty()
    rows, columns = WINDOW
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, slave


def _terminal_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "TERM")}
    return {**env, "TERM": "xterm-256color"}


def _read_all(master: int, into: bytearray, until: bytes | None, seen: threading.Event) -> None:
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer of the slave side has closed it
            return
        if not chunk:
            return
        into += chunk
        if until is not None and until in into:
            seen.set()


def on_terminal(argv: list[str], *, until: bytes | None = None) -> Timed:
    """``argv`` with a pseudo-terminal as stdout: to its exit, or until it writes
    ``until`` (then it is killed)."""
    master, slave = _open_terminal()
    output = bytearray()
    seen = threading.Event()
    reader = threading.Thread(target=_read_all, args=(master, output, until, seen), daemon=True)
    reader.start()
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=slave, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=_terminal_env()
    )
    os.close(slave)
    try:
        if until is None:
            code: int | None = process.wait(timeout=COMMAND_TIMEOUT)
            wall = time.perf_counter() - started
        else:
            if not seen.wait(COMMAND_TIMEOUT):
                raise RuntimeError(f"{argv[-1]}: never wrote {until!r}: {bytes(output)!r}")
            wall = time.perf_counter() - started
            code = None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join(timeout=5)
        os.close(master)
    return Timed(wall, code, bytes(output))


def piped(argv: list[str]) -> Timed:
    started = time.perf_counter()
    finished = subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT, check=False)
    return Timed(time.perf_counter() - started, finished.returncode, finished.stdout)


def _check(name: str, runs: list[Timed], *, styled: bool) -> None:
    codes = {run.exit_code for run in runs}
    if codes - {0, None}:
        raise RuntimeError(f"{name}: expected exit 0, got {sorted(map(str, codes))}")
    # On a terminal rich styles the table (ESC [ ... m); piped output has none.
    if any((b"\x1b[" in run.output) != styled for run in runs):
        raise RuntimeError(f"{name}: expected {'styled' if styled else 'plain'} output")


def _ratios(name: str, pairs: list[tuple[Timed, Timed]], *, styled: bool) -> dict[str, Any]:
    _check(name, [command for _, command in pairs], styled=styled)
    return {
        "median_wall_seconds": median(command.wall_seconds for _, command in pairs),
        "median_baseline_wall_seconds": median(base.wall_seconds for base, _ in pairs),
        "median_wall_ratio": median(c.wall_seconds / b.wall_seconds for b, c in pairs),
    }


def measure_drawn(
    runcast: list[str], baseline: list[str], *, runs: int, warmup: int
) -> dict[str, Any]:
    """``status`` drawn and piped, ``watch`` to its first screen, each vs ``baseline``
    (``runs`` counted rounds after ``warmup`` uncounted ones)."""
    pairs: dict[str, list[tuple[Timed, Timed]]] = {name: [] for name in DRAWN_COMMANDS}
    with live_server(runcast) as url:
        commands = {
            "status, terminal": lambda: on_terminal([*runcast, "status", url]),
            "status, piped": lambda: piped([*runcast, "status", url]),
            "watch, terminal": lambda: on_terminal([*runcast, "watch", url], until=FIRST_SCREEN),
        }
        for index in range(warmup + runs):
            for name in DRAWN_COMMANDS:
                pair = (piped(baseline), commands[name]())
                if index >= warmup:
                    pairs[name].append(pair)
    return {
        name: _ratios(name, runs, styled=name.endswith("terminal")) for name, runs in pairs.items()
    }
