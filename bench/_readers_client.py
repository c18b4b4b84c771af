"""The ``readers`` benchmark's clients, one role per process: ``/api/tasks`` readers, or
the ``/healthz`` prober.

Run as ``python -m bench._readers_client ROLE PORT COUNT LIMIT``.  ``readers``: COUNT
tasks each read every task, page after page (``?limit=LIMIT&after=NEXT`` until
``next`` is null; a server without pages answers everything at once), over and
over.  ``prober``: one request to ``/healthz`` every ``PROBE_INTERVAL``, each
timed from when it was due.  Control, one JSON object per line: stdout first
says ``{"ready": true}``; stdin ``{"cmd": "start"}`` starts (answered
``{"started": true}``), ``{"cmd": "stop"}`` stops and is answered with what was
measured.  Requests are plain HTTP/1.1 with ``Connection: close``, as the server
answers one per connection.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio

from ._control import say

PROBE_INTERVAL = 0.01
BUSY_PAUSE = 0.05
NEXT = re.compile(rb'"next":(null|"(\d+)")\}$')


@attrs.frozen
class Answer:
    status: int
    body: bytes


async def get(port: int, target: str) -> Answer:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        await stream.send_all(head.encode())
        received = bytearray()
        while data := await stream.receive_some(1 << 16):
            received += data
    head_bytes, _, body = bytes(received).partition(b"\r\n\r\n")
    return Answer(int(head_bytes.split(b" ", 2)[1]), body)


@attrs.define(eq=False)
class ReaderCounts:
    pages: int = 0
    full_reads: int = 0
    body_bytes: int = 0
    busy: int = 0
    failed: int = 0


async def read_forever(port: int, limit: int, counts: ReaderCounts) -> None:
    after: str | None = None
    while True:
        target = f"/api/tasks?limit={limit}" + ("" if after is None else f"&after={after}")
        answer = await get(port, target)
        if answer.status == 503:
            counts.busy += 1
            await trio.sleep(BUSY_PAUSE)
            continue
        if answer.status != 200:
            counts.failed += 1
            after = None
            continue
        counts.pages += 1
        counts.body_bytes += len(answer.body)
        # The cursor ends the body; finding it there spares parsing every row.
        found = NEXT.search(answer.body[-40:])
        after = found.group(2).decode() if found and found.group(2) else None
        if after is None:
            counts.full_reads += 1


async def probe_forever(port: int, latencies: list[float], failures: list[int]) -> None:
    """A probe every ``PROBE_INTERVAL`` whether or not the last was answered, each timed
    from when it was due: a stalled server delays every probe due meanwhile, not one
    (timing only answered probes, one after another, would hide most of a stall)."""

    async def probe(due: float) -> None:
        answer = await get(port, "/healthz")
        latencies.append(time.perf_counter() - due)
        if answer.status != 200:
            failures.append(answer.status)

    async with trio.open_nursery() as nursery:
        due = time.perf_counter()
        while True:
            nursery.start_soon(probe, due)
            due += PROBE_INTERVAL
            await trio.sleep(max(0.0, due - time.perf_counter()))


async def _commands(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    """Control commands, one JSON line each, until EOF."""
    buffer = b""
    while data := await stream.receive_some(4096):
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield str(json.loads(line)["cmd"])


async def _run(role: str, port: int, count: int, limit: int) -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    say({"ready": True})
    commands = _commands(stdin)
    async for command in commands:
        if command != "start":
            return
        counts = ReaderCounts()
        latencies: list[float] = []
        failures: list[int] = []
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            if role == "readers":
                for _ in range(count):
                    nursery.start_soon(read_forever, port, limit, counts)
            else:
                nursery.start_soon(probe_forever, port, latencies, failures)
            say({"started": True})
            await anext(commands)  # stop
            nursery.cancel_scope.cancel()
        result: dict[str, Any] = {"seconds": time.perf_counter() - started}
        if role == "readers":
            result.update(attrs.asdict(counts))
        else:
            result.update(latencies=latencies, failures=failures)
        say(result)


def main(argv: list[str]) -> None:
    role, port, count, limit = argv
    if role not in ("readers", "prober"):
        print(json.dumps({"error": f"unknown role {role!r}"}), flush=True)
        return
    trio.run(_run, role, int(port), int(count), int(limit))


if __name__ == "__main__":
    main(sys.argv[1:])
