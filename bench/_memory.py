"""Memory growth of ``runcast demo`` with 5 dashboards attached.

The real ``runcast demo`` process runs with 5 WebSocket clients subscribed to
``"*"`` (one load-generator process, reading every frame), and its RSS is
sampled from ``/proc`` every second.  The run is shortened by compressing
time rather than by doing less: ``--concurrency 32`` (8x the default 4 agents)
and ``--interval 1`` (10x the periodic updates), so a 90-second run carries
the events of about 12 minutes of the default demo.

Growth is measured after a warm-up (the first quarter of the run): the RSS at
the end against the RSS after warm-up, and the least-squares slope over the
samples after warm-up, extrapolated to 10 minutes.

A second, in-process measurement says what a finished task leaves behind:
the full pipeline runs ``retain_tasks`` no-op tasks after a warm-up that fills
the publisher's bounded history, and tracemalloc's difference, grouped by
file, is divided by the number of tasks.

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

from executor import Executor, TaskContext, open_executor

from ._children import open_child
from ._pipeline import Pipeline, open_pipeline
from ._report import emit, rss_bytes, table, write_result


@attrs.frozen
class MemoryConfig:
    seconds: float = 90.0
    dashboards: int = 5
    concurrency: int = 32
    interval: float = 1.0
    warmup_fraction: float = 0.25
    sample_every: float = 1.0
    #: Tasks whose leftovers tracemalloc measures, after ``retain_warmup`` tasks.
    retain_tasks: int = 5_000
    retain_warmup: int = 4_000


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
                before = tracemalloc.take_snapshot()
                await _run_tasks(executor, pipeline, "t", config.retain_tasks)
                after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    by_file = {
        _short_file(stat.traceback[0].filename): stat.size_diff / config.retain_tasks
        for stat in after.compare_to(before, "filename")
        if abs(stat.size_diff) / config.retain_tasks >= 1
    }
    return {
        "bytes_per_task": sum(by_file.values()),
        "bytes_per_task_by_file": dict(sorted(by_file.items(), key=lambda kv: -kv[1])),
    }


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


async def run(config: MemoryConfig) -> dict[str, Any]:
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("runcast")),
        "demo",
        *("--port", str(port), "--seed", "1"),
        *("--concurrency", str(config.concurrency), "--interval", str(config.interval)),
    ]
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="runcast-bench-") as tmp:
        process = await trio.lowlevel.open_process(
            command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await _wait_listening(port, process)
            loadgen_args = ["bench._loadgen", "127.0.0.1", str(port), "/ws", str(config.dashboards)]
            async with open_child("dashboards", loadgen_args) as dashboards:
                await dashboards.receive()
                start = trio.current_time()
                while trio.current_time() - start < config.seconds:
                    samples.append((trio.current_time() - start, rss_bytes(process.pid)))
                    await trio.sleep(config.sample_every)
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
    result = _summarize(config, samples, received["extra"], command)
    result["retained_after_each_task"] = await retained_per_task(config)
    return result


def _summarize(
    config: MemoryConfig, samples: list[tuple[float, int]], updates: int, command: list[str]
) -> dict[str, Any]:
    warm_index = max(1, int(len(samples) * config.warmup_fraction))
    after_warmup = samples[warm_index:]
    rss_warm = after_warmup[0][1]
    rss_end = samples[-1][1]
    slope = slope_per_second(after_warmup)
    return {
        "config": attrs.asdict(config),
        "demo_command": " ".join(Path(part).name if "/" in part else part for part in command),
        "session_updates_received_by_dashboards": updates,
        "rss_start_bytes": samples[0][1],
        "rss_after_warmup_bytes": rss_warm,
        "rss_end_bytes": rss_end,
        "rss_max_bytes": max(r for _, r in samples),
        "growth_after_warmup_pct": 100.0 * (rss_end - rss_warm) / rss_warm,
        "slope_bytes_per_minute": slope * 60,
        "extrapolated_10_min_growth_pct": 100.0 * slope * 600 / rss_warm,
        "target_growth_pct": 5.0,
        "samples": samples,
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
            f"Memory: runcast demo, {config['seconds']:.0f} s at concurrency "
            f"{config['concurrency']} and --interval {config['interval']:g}, "
            f"{config['dashboards']} dashboards (target: flat within 5 %)",
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


def _report_retained(result: dict[str, Any]) -> None:
    retained = result["retained_after_each_task"]
    rows = list(retained["bytes_per_task_by_file"].items())[:8]
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
    _report_retained(result)
    write_result("memory", result, directory=results_dir)
    return result
