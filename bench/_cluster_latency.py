"""Cluster latencies: a task's start on a worker -> ``session_update`` at a dashboard, and
an operator's pause -> the last of 3 workers paused.

Both use real processes (``runcast serve`` on port 0, ``runcast worker``s) and one
WebSocket client here, subscribed to ``"*"`` on the serve node. Every time is
``time.time()`` of this machine, so the processes share one clock.

- **End to end**: paced tasks (2 to 6 s, each prints a usage line every ``every_seconds``, so
  each line is its own event) keep ~``events_per_second`` events flowing through
  two workers. A ``task_started`` frame carries the time the worker published it;
  its latency is the arrival of the first ``session_update`` that follows it on
  the connection (the broadcaster publishes it after folding the start). Frames
  of every kind are also timed to their own arrival. Samples from the first
  ``warmup_seconds`` (every slot starting at once) are left out.
- **Control**: the client sends ``pause`` (then ``resume``) on the WebSocket; each
  worker logs ``control`` (JSON, ISO timestamp) the moment it applies a command
  (``api/cluster/_control_follower.py``). Latency: the last worker's timestamp
  minus the moment just before the command was sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from ._cluster_procs import (
    WEBSOCKET_LINE,
    ClusterBenchError,
    Proc,
    log_time,
    paced_command,
    run_to_end,
    serve_args,
    worker_args,
    write_job,
)
from ._cluster_throughput import END_EVENTS, _enter
from ._report import median, percentile

TARGET_P99_SECONDS = 0.1


@attrs.frozen
class LatencySizes:
    events_per_second: int = 1_000
    every_seconds: float = 0.05
    #: The shortest paced task; the longest runs 3x as long.
    task_seconds: float = 2.0
    workers: int = 2
    seconds: float = 20.0
    warmup_seconds: float = 2.0
    control_workers: int = 3
    control_rounds: int = 30

    @property
    def slots(self) -> int:
        """Tasks running at once to print ``events_per_second`` usage lines."""
        return max(self.workers, round(self.events_per_second * self.every_seconds))


def _frame_time(frame: dict[str, Any]) -> float:
    return datetime.fromisoformat(frame["time"]).timestamp()


async def _json(ws: WebSocketConnection) -> tuple[dict[str, Any], float]:
    message = await ws.get_message()
    arrived = time.time()
    frame: dict[str, Any] = json.loads(message)
    return frame, arrived


@asynccontextmanager
async def _subscribed(serve: Proc) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket client on ``serve``, subscribed to ``"*"``."""
    found = WEBSOCKET_LINE.search(await serve.wait_for(WEBSOCKET_LINE.pattern))
    assert found is not None
    async with open_websocket_url(found.group(1)) as ws:
        await ws.send_message(json.dumps({"type": "subscribe", "task_id": "*"}))
        await _until(ws, lambda f: f.get("type") == "subscribed")
        yield ws


@attrs.define
class EndToEndTally:
    """What the dashboard client saw: each start's wait for its ``session_update``, each
    task event's own frame latency (after the warm-up), and the ends that stop it."""

    warmup_seconds: float
    starts_waiting: list[float] = attrs.field(factory=list)
    start_to_update: list[float] = attrs.field(factory=list)
    frame_latency: list[float] = attrs.field(factory=list)
    task_events: int = 0
    first: float | None = None
    last: float = 0.0
    ended: int = 0

    def take(self, frame: dict[str, Any], arrived: float) -> None:
        if frame.get("type") != "event":
            return
        kind = frame["event"]
        if kind == "session_update":
            self.start_to_update += [arrived - t for t in self.starts_waiting]
            self.starts_waiting.clear()
            return
        if frame["task_id"] == "*" or kind == "task_queued":
            return
        when = _frame_time(frame)
        self.task_events += 1
        self.first = when if self.first is None else self.first
        self.last = when
        self.ended += kind in END_EVENTS
        if when < self.first + self.warmup_seconds:
            return
        self.frame_latency.append(arrived - when)
        if kind == "task_started":
            self.starts_waiting.append(when)


def _tasks(sizes: LatencySizes) -> list[list[str]]:
    """Paced tasks of 1x to 3x ``task_seconds`` (staggered ends spread their starts out)."""
    count = max(sizes.slots, round(sizes.slots * sizes.seconds / (2 * sizes.task_seconds)))
    short = max(1, round(sizes.task_seconds / sizes.every_seconds))
    spread = 2 * short
    return [
        paced_command(short + (index * 37) % (spread + 1), sizes.every_seconds)
        for index in range(count)
    ]


async def measure_end_to_end(directory: Path, url: str, sizes: LatencySizes) -> dict[str, Any]:
    session = "e2e"
    tasks = _tasks(sizes)
    job = write_job(directory / "e2e.toml", tasks)
    per_worker = -(-sizes.slots // sizes.workers)
    async with trio.open_nursery() as nursery:
        serve = await _enter(nursery, directory, "e2e-serve", serve_args(url, session))
        # While the serve node starts; the client ignores the task_queued it replays.
        await run_to_end(directory, ["submit", str(job), "--redis", url, "--session", session])
        async with _subscribed(serve) as ws:
            tally = EndToEndTally(sizes.warmup_seconds)
            for index in range(sizes.workers):
                name = f"e2e-w{index}"
                args = worker_args(url, session, name, per_worker, "--exit-when-idle")
                await _enter(nursery, directory, name, args)
            with trio.fail_after(sizes.seconds * 4 + 60):
                while tally.ended < len(tasks):
                    tally.take(*await _json(ws))
        nursery.cancel_scope.cancel()
    return _e2e_summary(sizes, tally, len(tasks))


def _e2e_summary(sizes: LatencySizes, tally: EndToEndTally, tasks: int) -> dict[str, Any]:
    if not tally.start_to_update:
        raise ClusterBenchError("no task start was measured after the warm-up")
    span = tally.last - (tally.first or tally.last)
    return {
        "sizes": attrs.asdict(sizes),
        "tasks": tasks,
        "task_events": tally.task_events,
        "task_events_per_second": tally.task_events / span if span > 0 else 0.0,
        "starts_measured": len(tally.start_to_update),
        "start_to_session_update": _quantiles(tally.start_to_update),
        "frames_measured": len(tally.frame_latency),
        "event_to_frame": _quantiles(tally.frame_latency),
        "target_p99_seconds": TARGET_P99_SECONDS,
    }


def _quantiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50_seconds": median(samples),
        "p99_seconds": percentile(samples, 0.99),
        "max_seconds": max(samples),
    }


async def _until(ws: WebSocketConnection, wanted: Any) -> None:
    while not wanted(frame := (await _json(ws))[0]):
        if frame.get("type") == "error":
            raise ClusterBenchError(f"serve node: {frame['error']}")


async def _applied(workers: list[Proc], op: str, within: float = 10.0) -> list[float]:
    """Each worker's log time of applying ``op`` (their next ``control`` line for it)."""
    times: dict[str, float] = {}
    with trio.fail_after(within):
        while len(times) < len(workers):
            for proc in workers:
                for record in proc.new_records():
                    if record.get("event") == "control" and record.get("op") == op:
                        times.setdefault(proc.name, log_time(record))
            await trio.sleep(0.005)
    return sorted(times.values())


async def _control_round(ws: WebSocketConnection, workers: list[Proc], op: str) -> list[float]:
    sent = time.time()
    await ws.send_message(json.dumps({"type": "command", "action": op, "task_id": "*"}))
    await _until(ws, lambda f: f.get("type") == "command_result")
    paused = op == "pause"
    await _until(
        ws,
        lambda f: f.get("event") == "session_update" and f["data"]["is_paused"] is paused,
    )
    return [at - sent for at in await _applied(workers, op)]


async def measure_control(directory: Path, url: str, sizes: LatencySizes) -> dict[str, Any]:
    session = "control"
    rounds: dict[str, list[list[float]]] = {"pause": [], "resume": []}
    async with trio.open_nursery() as nursery:
        serve = await _enter(nursery, directory, "control-serve", serve_args(url, session))
        workers = []
        for index in range(sizes.control_workers):
            args = worker_args(url, session, f"control-w{index}", 1)
            workers.append(await _enter(nursery, directory, f"control-w{index}", args))
        for proc in workers:
            await proc.wait_for(r'"event": "worker started"')
        async with _subscribed(serve) as ws:
            for _ in range(sizes.control_rounds):
                for op in ("pause", "resume"):
                    rounds[op].append(await _control_round(ws, workers, op))
                    await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    return {
        "workers": sizes.control_workers,
        "rounds": sizes.control_rounds,
        "per_round_seconds": rounds,
        "last_worker": {op: _quantiles([r[-1] for r in rs]) for op, rs in rounds.items()},
        "first_worker": {op: _quantiles([r[0] for r in rs]) for op, rs in rounds.items()},
        "target_p99_seconds": TARGET_P99_SECONDS,
    }
