"""How fast one serve node folds a cluster session's event stream (``python -m bench._serve_fold``).

A redis-server of its own (loopback, free port, AOF off: this measures the node) is
filled with a session of ``--tasks`` tasks, each started, with ``--usage`` usage
records, ``--output`` output lines and an end, appended as a worker appends them
(claimed leases, pipelined ``append`` scripts). Then a serve node starts
(``open_front``: follower, publisher, broadcaster, metrics, task table, server) and
the time until it has read the stream to its end is taken: events/s folded. Also the
cost of ``RelayPublisher.publish_at`` next to ``Publisher.publish`` for one event.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

import trio

from api.cluster import (
    AppendRequest,
    QueuedTask,
    SessionKeys,
    SubmitSettings,
    open_link,
    parse_redis_url,
)
from api.cluster._front import FrontSettings, open_front
from api.server import ServerConfig
from events import (
    Event,
    EventCodec,
    Publisher,
    RelayPublisher,
    TaskCompleted,
    TaskOutput,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)
from executor import CommandSpec

_CODEC = EventCodec()
_WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed")
    port = _free_port()
    args = [executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return process, port


def _task_events(task_id: str, usage: int, output: int) -> list[Event]:
    events: list[Event] = [TaskStarted(task_id=task_id, name=task_id)]
    for n in range(usage):
        usage_record = TaskUsage(
            task_id=task_id, model="m", input_tokens=100 + n, output_tokens=10, cost_usd=1e-4
        )
        events.append(usage_record)
    events += [TaskOutput(task_id=task_id, line=f"working on step {n}") for n in range(output)]
    events.append(TaskCompleted(task_id=task_id, exit_code=0))
    return events


async def _fill(url: str, name: str, tasks: int, usage: int, output: int) -> int:
    async with open_link(parse_redis_url(url), SessionKeys(name)) as link:
        queued = [
            QueuedTask(
                f"t{n}",
                CommandSpec(command=["true"], id=f"t{n}"),
                _CODEC.encode(0, _WHEN, TaskQueued(task_id=f"t{n}", name=f"t{n}")),
            )
            for n in range(tasks)
        ]
        await link.submit("bench", queued, settings=SubmitSettings())
        src_seq = 0
        while claims := await link.claim("w:bench", 500, 600_000):
            batch: list[AppendRequest] = []
            for claim in claims:
                for event in _task_events(claim.task_id, usage, output):
                    src_seq += 1
                    cost = event.cost_usd if isinstance(event, TaskUsage) else None
                    wire = _CODEC.encode(0, _WHEN, event)
                    task, kind = claim.task_id, event.event_name
                    batch.append(
                        AppendRequest("w:bench", src_seq, task, claim.token, kind, cost, wire)
                    )
            for start in range(0, len(batch), 1000):
                await link.append_many(batch[start : start + 1000])
        return (await link.state()).last_seq


async def _fold(url: str, name: str, events: int) -> float:
    async with open_link(parse_redis_url(url), SessionKeys(name)) as link:
        started = time.perf_counter()
        settings = FrontSettings(server=ServerConfig(port=0), interval=60.0)
        async with open_front(settings, link) as front:
            await front.follower.wait_caught_up()
            assert front.publisher.last_seq == events
            took = time.perf_counter() - started
            snapshot = front.broadcaster.snapshot()
            assert snapshot.tasks_completed == len(front.table), (snapshot, len(front.table))
        return took


def _publish_costs() -> tuple[float, float]:
    event = TaskUsage(task_id="a", model="m", input_tokens=5, output_tokens=1, cost_usd=1e-4)
    plain = Publisher()
    relay = RelayPublisher()
    seq = iter(range(1, 10**9))
    n = 200_000
    publish = min(timeit.repeat(lambda: plain.publish(event), number=n, repeat=5)) / n
    publish_at = (
        min(timeit.repeat(lambda: relay.publish_at(next(seq), _WHEN, event), number=n, repeat=5))
        / n
    )
    return publish, publish_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--usage", type=int, default=5)
    parser.add_argument("--output", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        process, port = _start_redis(Path(directory))
        try:
            url = f"redis://127.0.0.1:{port}/0"
            filled = time.perf_counter()
            events = trio.run(_fill, url, "bench", args.tasks, args.usage, args.output)
            filled = time.perf_counter() - filled
            took = trio.run(_fold, url, "bench", events)
        finally:
            process.terminate()
            process.wait()
    rate = events / filled
    print(f"appended {events} events in {filled:.2f}s ({rate:,.0f} events/s, 1 producer)")
    print(f"one serve node folded {events} events in {took:.2f}s: {events / took:,.0f} events/s")
    publish, publish_at = _publish_costs()
    print(f"Publisher.publish {publish * 1e6:.2f} us/event")
    print(f"RelayPublisher.publish_at {publish_at * 1e6:.2f} us/event")


if __name__ == "__main__":
    main()
