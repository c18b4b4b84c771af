"""Memory growth of ``runcast demo`` with 5 dashboards attached.

The real ``runcast demo`` process runs with 5 WebSocket clients subscribed to
``"*"`` (one load-generator process, reading every frame), and its RSS is
sampled from ``/proc`` every second.  The run is shortened by compressing
time rather than by doing less: ``--concurrency 64`` (16x the default 4
agents), ``--speed 4`` (every simulated wait a quarter as long),
``--interval 1`` (10x the periodic updates) and a budget the demo never
exhausts (no pauses): about 65x the default demo's tasks per minute.

Warm-up lasts until every bounded structure is full: every dashboard has seen
10,000 events (the publisher's replay history) and 10,000 task ends (the
executor's 5,000 kept finished tasks, the session aggregate's 10,000
remembered ended ids).  Memory that still grows after that grows without a
bound.  Then ``seconds`` are measured: the RSS at the end against the RSS
after warm-up, and the least-squares slope, extrapolated to 10 minutes.

A second, in-process measurement says what a finished task leaves behind:
the full pipeline runs ``retain_tasks`` no-op tasks after a warm-up that fills
the publisher's bounded history and the executor's and aggregates' bounded
records of finished tasks, and tracemalloc's difference, grouped by file, is
divided by the number of tasks.  The history's own size is summed from its
items (``sys.getsizeof`` of each item, event, time and wire text).

(The idle-subscriber memory, RSS per connected subscriber at N = 1,000, comes
from the fan-out runs: see ``_fanout``.)
"""

from __future__ import annotations

import gc
import signal
import socket
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import trio

from broadcaster._aggregate import DEFAULT_REMEMBER_ENDED
from events import Published
from events._publisher import DEFAULT_HISTORY
from executor import DEFAULT_KEEP_FINISHED, Executor, TaskContext, open_executor

from ._children import Child, open_child
from ._pipeline import Pipeline, open_pipeline
from ._report import emit, process_cpu_seconds, rss_bytes, table, write_result

END_EVENTS = ("task_completed", "task_failed", "task_cancelled")


@attrs.frozen
class MemoryConfig:
    #: Seconds measured once the warm-up is over.
    seconds: float = 60.0
    dashboards: int = 5
    concurrency: int = 64
    #: The demo's time compression (``runcast demo --speed``).
    speed: float = 4.0
    interval: float = 1.0
    #: Large enough that the demo never pauses on it: more events per second.
    budget_usd: float = 1_000.0
    #: Events every dashboard must have seen before measuring: the publisher's
    #: replay history (bounded, 10,000 events) is full by then.
    warm_events: int = DEFAULT_HISTORY
    #: Task ends every dashboard must have seen before measuring: the executor's
    #: kept finished tasks and the aggregate's remembered ended ids are full by then.
    warm_task_ends: int = max(DEFAULT_KEEP_FINISHED, DEFAULT_REMEMBER_ENDED)
    warm_limit_seconds: float = 900.0
    sample_every: float = 1.0
    #: Tasks whose leftovers tracemalloc measures, after ``retain_warmup`` tasks.
    retain_tasks: int = 5_000
    retain_warmup: int = 4_000
    #: Tasks run after the warm-up so the executor's finished records (5,000) and
    #: the aggregates' ended ids (10,000) are at their bounds before measuring.
    retain_fill: int = 7_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_listening(port: int, process: trio.Process) -> None:
    with trio.fail_after(30):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"runcast demo exited with {process.returncode}")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.1)
                continue
            await stream.aclose()
            return


async def _noop_task(ctx: TaskContext) -> None:
    return None


async def _run_tasks(executor: Executor, pipeline: Pipeline, prefix: str, count: int) -> None:
    for index in range(count):
        executor.submit(_noop_task, task_id=f"{prefix}{index}")
        if index % 500 == 499:
            await trio.lowlevel.checkpoint()
            await pipeline.wait_for_store()
    await executor.join()
    await pipeline.wait_until_stored()
    gc.collect()


async def retained_per_task(config: MemoryConfig) -> dict[str, Any]:
    """Bytes still allocated per finished task, by the file that allocated them."""
    tracemalloc.start()
    try:
        with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
            async with (
                open_pipeline(Path(tmp) / "retain.db") as pipeline,
                open_executor(pipeline.publisher, concurrency=64) as executor,
            ):
                await _run_tasks(executor, pipeline, "warm", config.retain_warmup)
                await _run_tasks(executor, pipeline, "fill", config.retain_fill)
                before = tracemalloc.take_snapshot()
                kept = pipeline.publisher.history_since(0)
                history, history_bytes = len(kept), _history_bytes(kept)
                del kept  # it would keep the replaced items alive through the measurement
                await _run_tasks(executor, pipeline, "t", config.retain_tasks)
                after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    by_file = {
        _short_file(stat.traceback[0].filename): stat.size_diff / config.retain_tasks
        for stat in after.compare_to(before, "filename")
        if abs(stat.size_diff) / config.retain_tasks >= 1
    }
    per_task = sum(by_file.values())
    return {
        "bytes_per_task": per_task,
        "bytes_per_task_by_file": dict(sorted(by_file.items(), key=lambda kv: -kv[1])),
        "history_events_kept": history,
        "history_bytes_per_event": history_bytes / max(1, history),
    }


def _history_bytes(items: list[Published]) -> int:
    """What the replay history's items hold: each item, its event and its wire text."""
    size = 0
    for item in items:
        size += sys.getsizeof(item) + sys.getsizeof(item.event) + sys.getsizeof(item.wire)
        size += sys.getsizeof(item.time)
    return size


def _short_file(name: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in name:
            return name.split(marker, 1)[1]
    return name


def slope_per_second(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (bytes) over time (seconds)."""
    count = len(samples)
    if count < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / count
    mean_r = sum(r for _, r in samples) / count
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (r - mean_r) for t, r in samples) / spread


@attrs.frozen
class Sample:
    seconds: float
    rss: int
    events: int  # events each dashboard has received so far
    task_ends: int  # of which task ends
    cpu_seconds: float  # the demo's CPU time so far

    def warm(self, config: MemoryConfig) -> bool:
        return self.events >= config.warm_events and self.task_ends >= config.warm_task_ends


async def _sample(dashboards: Child, config: MemoryConfig, pid: int, start: float) -> Sample:
    received = await dashboards.ask({"expect": 0})
    counts: dict[str, int] = received["events"]
    events = sum(counts.values()) // config.dashboards
    ends = sum(counts.get(name, 0) for name in END_EVENTS) // config.dashboards
    return Sample(
        trio.current_time() - start, rss_bytes(pid), events, ends, process_cpu_seconds(pid)
    )


async def _watch(dashboards: Child, config: MemoryConfig, pid: int) -> tuple[list[Sample], int]:
    """Samples until ``seconds`` past the warm-up; returns them and the warm-up's index."""
    samples: list[Sample] = []
    start = trio.current_time()
    warm_index: int | None = None
    while True:
        sample = await _sample(dashboards, config, pid, start)
        samples.append(sample)
        if warm_index is None and (
            sample.warm(config) or sample.seconds >= config.warm_limit_seconds
        ):
            warm_index = len(samples) - 1
        if (
            warm_index is not None
            and sample.seconds - samples[warm_index].seconds >= config.seconds
        ):
            return samples, warm_index
        await trio.sleep(config.sample_every)


async def run(config: MemoryConfig) -> dict[str, Any]:
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("runcast")),
        "demo",
        *("--port", str(port), "--seed", "1", "--budget-usd", str(config.budget_usd)),
        *("--concurrency", str(config.concurrency), "--interval", str(config.interval)),
        *("--speed", str(config.speed)),
    ]
    with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
        process = await trio.lowlevel.open_process(
            command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await _wait_listening(port, process)
            loadgen_args = ["bench._loadgen", "127.0.0.1", str(port), "/ws", str(config.dashboards)]
            async with open_child("dashboards", loadgen_args) as dashboards:
                await dashboards.receive()
                samples, warm_index = await _watch(dashboards, config, process.pid)
                received = await dashboards.ask({"expect": 0})
                await dashboards.send({"quit": True})
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)
                with trio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    result = _summarize(config, samples, warm_index, received["extra"], command)
    # Every dashboard gets every event; per dashboard, by event name.
    result["events_per_dashboard"] = {
        name: count // config.dashboards for name, count in sorted(received["events"].items())
    }
    result["retained_after_each_task"] = await retained_per_task(config)
    return result


def _summarize(
    config: MemoryConfig,
    samples: list[Sample],
    warm_index: int,
    updates: int,
    command: list[str],
) -> dict[str, Any]:
    warm = samples[warm_index]
    after_warmup = samples[warm_index:]
    end = samples[-1]
    slope = slope_per_second([(s.seconds, s.rss) for s in after_warmup])
    measured = end.seconds - warm.seconds
    return {
        "config": attrs.asdict(config),
        "demo_command": " ".join(Path(part).name if "/" in part else part for part in command),
        "session_updates_received_by_dashboards": updates,
        "warmup_seconds": warm.seconds,
        "history_full_at_warmup": warm.events >= config.warm_events,
        "bounds_full_at_warmup": warm.warm(config),
        "task_ends_at_warmup": warm.task_ends,
        "events_per_second_after_warmup": (end.events - warm.events) / measured,
        "task_ends_per_minute_after_warmup": 60 * (end.task_ends - warm.task_ends) / measured,
        "demo_cpu_share_after_warmup": (end.cpu_seconds - warm.cpu_seconds) / measured,
        "rss_start_bytes": samples[0].rss,
        "rss_after_warmup_bytes": warm.rss,
        "rss_end_bytes": end.rss,
        "rss_max_bytes": max(s.rss for s in samples),
        "growth_after_warmup_pct": 100.0 * (end.rss - warm.rss) / warm.rss,
        "slope_bytes_per_minute": slope * 60,
        "extrapolated_10_min_growth_pct": 100.0 * slope * 600 / warm.rss,
        "target_growth_pct": 5.0,
        "samples": [attrs.astuple(s) for s in samples],
    }


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    mib = 1024 * 1024
    rows = [
        (
            result["rss_start_bytes"] / mib,
            result["rss_after_warmup_bytes"] / mib,
            result["rss_end_bytes"] / mib,
            f"{result['growth_after_warmup_pct']:+.1f}%",
            result["slope_bytes_per_minute"] / 1024,
            f"{result['extrapolated_10_min_growth_pct']:+.1f}%",
            result["session_updates_received_by_dashboards"],
        )
    ]
    emit(
        table(
            f"Memory: runcast demo at concurrency {config['concurrency']}, --speed "
            f"{config['speed']:g}, --interval {config['interval']:g}, "
            f"{config['dashboards']} dashboards: {result['warmup_seconds']:.0f} s warm-up "
            f"({result['task_ends_at_warmup']:,} task ends; every bound full: "
            f"{'yes' if result['bounds_full_at_warmup'] else 'NO'}), then "
            f"{config['seconds']:.0f} s measured at "
            f"{result['events_per_second_after_warmup']:.0f} events/s, "
            f"{result['task_ends_per_minute_after_warmup']:,.0f} task ends/min, demo CPU "
            f"{100 * result['demo_cpu_share_after_warmup']:.0f} % (target: flat within 5 %)",
            (
                "RSS start MiB",
                "after warm-up MiB",
                "end MiB",
                "growth",
                "slope KiB/min",
                "10-min extrapolation",
                "updates to dashboards",
            ),
            rows,
        )
    )


def _report_events(result: dict[str, Any]) -> None:
    events = result["events_per_dashboard"]
    seconds = result["samples"][-1][0]
    total = sum(events.values())
    emit(
        f"Each dashboard received {total:,} events in {seconds:.0f} s ({total / seconds:.0f}/s), "
        f"{events.get('task_started', 0):,} task starts, "
        f"{sum(events.get(name, 0) for name in END_EVENTS):,} task ends"
    )


def _report_retained(result: dict[str, Any]) -> None:
    retained = result["retained_after_each_task"]
    rows = list(retained["bytes_per_task_by_file"].items())[:8]
    emit(
        f"The publisher's replay history: {retained['history_bytes_per_event']:,.0f} bytes "
        f"per event kept ({retained['history_events_kept']:,} kept, bounded)"
    )
    emit(
        table(
            f"Left behind by each finished task: {retained['bytes_per_task']:,.0f} bytes "
            f"(tracemalloc, {result['config']['retain_tasks']:,} no-op tasks, full pipeline)",
            ("allocated in", "bytes/task"),
            rows,
        )
    )


async def main(config: MemoryConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    report(result)
    _report_events(result)
    _report_retained(result)
    write_result("memory", result, directory=results_dir)
    return result
