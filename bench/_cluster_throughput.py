"""Cluster throughput: a job file through 1, 2 and 4 ``runcast worker``s vs ``runcast run``.

The job: ``tasks`` trivial commands (``printf`` of ``usage_lines`` usage lines), so
what is measured is runcast's overhead per task. The baseline, ``runcast run JOB
--concurrency C --store :memory:``, is timed from its start to its exit. A cluster
round starts W workers (``--concurrency C`` each) and waits until each says it
started; then the clock starts, ``runcast submit`` runs, and the clock stops when
the session's event stream holds the last task end (blocking reads from this
process). Both sides pay one process start-up (run's, submit's) inside the
clock. Every round checks its work: every task completed, every usage record
in the stream.

Also here: how fast one serve node folds the stream (``bench/_serve_fold.py``),
against reading the same entries from Redis alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from api.cluster import SessionKeys, open_link, parse_redis_url

from ._cluster_procs import (
    ClusterBenchError,
    Proc,
    printf_command,
    process_cpu_seconds,
    redis_cpu_seconds,
    run_to_end,
    run_with_rusage,
    started,
    worker_args,
    write_job,
)
from ._report import median
from ._serve_fold import _fill, _fold

END_EVENTS = frozenset(("task_completed", "task_failed", "task_cancelled"))
READ_COUNT = 1000


@attrs.frozen
class ThroughputSizes:
    tasks: int = 2_000
    usage_lines: int = 3
    #: Per worker, and the baseline run's.
    concurrency: int = 8
    workers: tuple[int, ...] = (1, 2, 4)
    rounds: int = 3


@attrs.frozen
class StreamTally:
    ended: int
    completed: int
    usage_records: int
    events: int


async def _until_all_ended(url: str, session: str, tasks: int, within: float) -> StreamTally:
    """Read the session's events until ``tasks`` ends are in; returns what was read."""
    ended = completed = records = events = 0
    after = "0"
    async with open_link(parse_redis_url(url), SessionKeys(session)) as link:
        with trio.fail_after(within):
            while ended < tasks:
                entries = await link.read_events(after, count=READ_COUNT, block_ms=1000)
                for entry in entries:
                    after = entry.entry_id
                    events += 1
                    frame = json.loads(entry.event_json)
                    kind = frame["event"]
                    if kind in END_EVENTS:
                        ended += 1
                        completed += kind == "task_completed"
                    elif kind == "task_usage":
                        records += frame["data"].get("records", 1)
    return StreamTally(ended, completed, records, events)


@attrs.frozen
class RoundResult:
    seconds: float
    #: The runcast processes with their tasks: ``run`` whole (start-up included), or
    #: the workers from the clock's start to its stop (submit left out).
    runcast_cpu_seconds: float
    redis_cpu_seconds: float = 0.0


def _workers_cpu(procs: list[Proc]) -> float:
    return sum(process_cpu_seconds(proc.process.pid) for proc in procs)


async def cluster_round(
    directory: Path, url: str, session: str, job: Path, sizes: ThroughputSizes, workers: int
) -> RoundResult:
    """From submit to the last task end in the stream, through ``workers`` workers."""
    async with trio.open_nursery() as nursery:
        procs = []
        for index in range(workers):
            args = worker_args(url, session, f"{session}-w{index}", sizes.concurrency)
            procs.append(await _enter(nursery, directory, f"{session}-w{index}", args))
        for proc in procs:
            await proc.wait_for(r'"event": "worker started"')
        cpu, redis_cpu = _workers_cpu(procs), redis_cpu_seconds(url)
        started_at = time.perf_counter()
        submit = ["submit", str(job), "--redis", url, "--session", session]
        await run_to_end(directory, submit)
        tally = await _until_all_ended(url, session, sizes.tasks, within=600)
        took = time.perf_counter() - started_at
        cpu, redis_cpu = _workers_cpu(procs) - cpu, redis_cpu_seconds(url) - redis_cpu
        nursery.cancel_scope.cancel()  # stops the workers (SIGTERM: idle, they leave)
    expected = sizes.tasks * sizes.usage_lines
    if tally.completed != sizes.tasks or tally.usage_records != expected:
        raise ClusterBenchError(f"{session}: {tally} (expected {expected} usage records)")
    return RoundResult(took, cpu, redis_cpu)


async def _enter(nursery: trio.Nursery, directory: Path, name: str, args: list[str]) -> Any:
    """Start a process kept alive (and stopped) by a task of ``nursery``."""

    async def keep(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        async with started(directory, name, args) as proc:
            task_status.started(proc)
            await trio.sleep_forever()

    return await nursery.start(keep)


async def run_round(directory: Path, job: Path, sizes: ThroughputSizes) -> RoundResult:
    args = ["run", str(job), "--concurrency", str(sizes.concurrency), "--store", ":memory:"]
    args += ["--port", "0", "--log-level", "warning"]
    took, cpu = await trio.to_thread.run_sync(run_with_rusage, directory, args)
    return RoundResult(took, cpu)


async def measure_throughput(directory: Path, url: str, sizes: ThroughputSizes) -> dict[str, Any]:
    job = write_job(
        directory / "throughput.toml", [printf_command(sizes.usage_lines)] * sizes.tasks
    )
    sides = ["run", *(f"{w} worker(s)" for w in sizes.workers)]
    rounds: dict[str, list[RoundResult]] = {side: [] for side in sides}
    for round_index in range(sizes.rounds):
        # Alternate the order so drift on a noisy machine hits every side alike.
        for side in sides if round_index % 2 == 0 else list(reversed(sides)):
            if side == "run":
                result = await run_round(directory, job, sizes)
            else:
                workers = int(side.split()[0])
                session = f"tp{round_index}w{workers}"
                result = await cluster_round(directory, url, session, job, sizes, workers)
            rounds[side].append(result)
    return _throughput_summary(sizes, rounds)


def _throughput_summary(
    sizes: ThroughputSizes, rounds: dict[str, list[RoundResult]]
) -> dict[str, Any]:
    base = [r.seconds for r in rounds["run"]]
    sides: dict[str, Any] = {}
    for side, results in rounds.items():
        times = [r.seconds for r in results]
        ratios = [b / t for b, t in zip(base, times, strict=True)]
        sides[side] = {
            "seconds": times,
            "runcast_cpu_seconds": [r.runcast_cpu_seconds for r in results],
            "redis_cpu_seconds": [r.redis_cpu_seconds for r in results],
            "median_runcast_cpu_ms_per_task": median(
                r.runcast_cpu_seconds * 1000 / sizes.tasks for r in results
            ),
            "median_redis_cpu_ms_per_task": median(
                r.redis_cpu_seconds * 1000 / sizes.tasks for r in results
            ),
            "median_tasks_per_second": median(sizes.tasks / t for t in times),
            "median_usage_records_per_second": median(
                sizes.tasks * sizes.usage_lines / t for t in times
            ),
            "ratio_per_round": ratios,
            "median_ratio": median(ratios),
        }
    return {"sizes": attrs.asdict(sizes), "sides": sides}


@attrs.frozen
class FoldSizes:
    tasks: int = 5_000
    usage: int = 5
    output: int = 3
    rounds: int = 3


async def _read_alone(url: str, session: str) -> tuple[int, float]:
    """The whole stream read from Redis and parsed, nothing folded: entries, seconds."""
    entries = 0
    after = "0"
    async with open_link(parse_redis_url(url), SessionKeys(session)) as link:
        started_at = time.perf_counter()
        while batch := await link.read_events(after, count=READ_COUNT, block_ms=None):
            after = batch[-1].entry_id
            entries += len(batch)
            for entry in batch:
                json.loads(entry.event_json)
        return entries, time.perf_counter() - started_at


async def measure_fold(url: str, sizes: FoldSizes) -> dict[str, Any]:
    session = "fold"
    events = await _fill(url, session, sizes.tasks, sizes.usage, sizes.output)
    fold: list[float] = []
    read: list[float] = []
    for _ in range(sizes.rounds):
        fold.append(await _fold(url, session, events))
        entries, took = await _read_alone(url, session)
        if entries != events:
            raise ClusterBenchError(f"read {entries} entries of {events}")
        read.append(took)
    return {
        "sizes": attrs.asdict(sizes),
        "events": events,
        "fold_seconds": fold,
        "read_alone_seconds": read,
        "median_fold_events_per_second": median(events / t for t in fold),
        "median_read_alone_events_per_second": median(events / t for t in read),
        "median_ratio": median(r / f for r, f in zip(read, fold, strict=True)),
    }
