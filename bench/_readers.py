"""Readers: ``/healthz`` latency while 8 clients loop on ``/api/tasks`` at 20,000 tasks.

Issue 17 (item 7): every ``/api/tasks`` answer listed every task, built on the event
loop in one step, so readers looping on it held ``/healthz``, and every start, usage
record and timeout of the run, for as long (before and after: bench/README.md §6).

The server runs here, on this process's trio loop, with a real executor holding
``tasks`` queued tasks (started paused, names a command line long), the
broadcaster and the metrics.  The clients run in child processes
(``_readers_client``): ``reader_processes`` share ``readers`` readers, each reading
every task over and over, page after page (``limit=page_limit``; a server without
pages answers everything at once), and a prober times one ``/healthz`` every
10 ms.  The prober runs ``seconds`` with no reader ("idle"), then again once the
readers have run ``warmup_seconds`` ("loaded"), while the loop's task steps are
timed (``_loopwatch``).  Target: loaded p99 < 50 ms.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio
from prometheus_client import CollectorRegistry

from api import RuncastServer, ServerConfig, serve_runcast
from broadcaster import RuncastMetrics, serve_broadcaster
from events import Publisher
from executor import Executor, TaskContext, open_executor

from ._children import Child, open_child
from ._loopwatch import watch_loop
from ._report import emit, median, percentile, table, write_result

TARGET_P99_SECONDS = 0.050


@attrs.frozen
class ReadersConfig:
    tasks: int = 20_000
    readers: int = 8
    reader_processes: int = 2
    page_limit: int = 1_000
    seconds: float = 10.0
    warmup_seconds: float = 1.0
    #: Task names as long as a typical command line, as in the issue's run.
    name_length: int = 120


async def _never(ctx: TaskContext) -> None:
    await trio.sleep_forever()


def _submit_tasks(executor: Executor, config: ReadersConfig) -> None:
    for index in range(config.tasks):
        command = f"python agent.py --task {index} --model claude-sonnet-4-5 --prompt-file "
        name = (command + "prompts/" + "x" * config.name_length)[: config.name_length]
        executor.submit(_never, task_id=f"task-{index:06d}", name=name)


@asynccontextmanager
async def _served(config: ReadersConfig) -> AsyncIterator[RuncastServer]:
    publisher = Publisher()
    metrics = RuncastMetrics(CollectorRegistry(), publisher)
    try:
        async with trio.open_nursery() as nursery:
            broadcaster = await nursery.start(
                partial(serve_broadcaster, publisher, metrics=metrics)
            )
            async with open_executor(publisher, start_paused=True) as executor:
                _submit_tasks(executor, config)
                server: RuncastServer = await nursery.start(
                    partial(
                        serve_runcast,
                        publisher,
                        session_source=broadcaster,
                        executor=executor,
                        metrics=metrics,
                        config=ServerConfig(host="127.0.0.1", port=0),
                    )
                )
                try:
                    yield server
                finally:
                    executor.cancel_all(reason="bench over")
            nursery.cancel_scope.cancel()
    finally:
        metrics.close()


def _client_args(role: str, port: int, count: int, limit: int) -> list[str]:
    return ["bench._readers_client", role, str(port), str(count), str(limit)]


async def _start(child: Child) -> None:
    reply = await child.ask({"cmd": "start"})
    assert reply == {"started": True}, reply


async def _probe(prober: Child, seconds: float) -> dict[str, Any]:
    await _start(prober)
    await trio.sleep(seconds)
    return await prober.ask({"cmd": "stop"})


def _latency_summary(result: dict[str, Any]) -> dict[str, Any]:
    latencies: list[float] = result["latencies"]
    return {
        "probes": len(latencies),
        "failures": result["failures"],
        "p50_seconds": median(latencies),
        "p99_seconds": percentile(latencies, 0.99),
        "max_seconds": max(latencies),
    }


async def run(config: ReadersConfig) -> dict[str, Any]:
    shares = [
        config.readers // config.reader_processes + (i < config.readers % config.reader_processes)
        for i in range(config.reader_processes)
    ]
    async with _served(config) as server, AsyncExitStack() as stack:
        port, limit = server.port, config.page_limit
        prober = await stack.enter_async_context(
            open_child("prober", _client_args("prober", port, 1, limit))
        )
        readers = [
            await stack.enter_async_context(
                open_child(f"readers {i}", _client_args("readers", port, share, limit))
            )
            for i, share in enumerate(shares)
        ]
        for child in (prober, *readers):
            assert await child.receive() == {"ready": True}
        idle = await _probe(prober, config.seconds)
        for child in readers:
            await _start(child)
        await trio.sleep(config.warmup_seconds)
        async with watch_loop() as watch:
            loaded = await _probe(prober, config.seconds)
        loop = watch.as_dict()
        counts = [await child.ask({"cmd": "stop"}) for child in readers]
        refused = dict(server.refusals.by_status)
    return _summarize(config, idle, loaded, counts, loop, refused)


def _summarize(
    config: ReadersConfig,
    idle: dict[str, Any],
    loaded: dict[str, Any],
    counts: list[dict[str, Any]],
    loop: dict[str, Any],
    refused: dict[int, int],
) -> dict[str, Any]:
    seconds = max(c["seconds"] for c in counts)
    reading = {
        key: sum(c[key] for c in counts)
        for key in ("pages", "full_reads", "body_bytes", "busy", "failed")
    }
    loaded_summary = _latency_summary(loaded)
    return {
        "config": attrs.asdict(config),
        "target_p99_seconds": TARGET_P99_SECONDS,
        "healthz_idle": _latency_summary(idle),
        "healthz_loaded": loaded_summary,
        "met": loaded_summary["p99_seconds"] < TARGET_P99_SECONDS,
        "readers": {
            **reading,
            "seconds": seconds,
            "pages_per_second": reading["pages"] / seconds,
            "full_reads_per_second": reading["full_reads"] / seconds,
            "mb_per_second": reading["body_bytes"] / seconds / 1e6,
        },
        "server_refused_by_status": {str(status): n for status, n in refused.items()},
        "loop_while_loaded": loop,
    }


def report(result: dict[str, Any]) -> None:
    config = result["config"]
    rows = []
    for phase in ("healthz_idle", "healthz_loaded"):
        summary = result[phase]
        rows.append(
            [
                phase.removeprefix("healthz_"),
                summary["probes"],
                summary["p50_seconds"] * 1e3,
                summary["p99_seconds"] * 1e3,
                summary["max_seconds"] * 1e3,
            ]
        )
    emit(
        table(
            f"/healthz with {config['readers']} readers of /api/tasks at {config['tasks']:,} "
            f"tasks (target p99 < {TARGET_P99_SECONDS * 1e3:.0f} ms)",
            ["phase", "probes", "p50 ms", "p99 ms", "max ms"],
            rows,
        )
    )
    reading, loop = result["readers"], result["loop_while_loaded"]
    emit(
        f"readers: {reading['pages_per_second']:.1f} pages/s, "
        f"{reading['full_reads_per_second']:.2f} full reads/s, "
        f"{reading['mb_per_second']:.1f} MB/s, {reading['busy']} answered 503, "
        f"{reading['failed']} failed"
    )
    emit(
        f"loop while loaded: longest task step {loop['longest_task_step_seconds'] * 1e3:.1f} ms "
        f"({loop['longest_task_step_cpu_seconds'] * 1e3:.1f} ms CPU, "
        f"{loop['longest_task_step_task']}), {loop['task_steps_over_10ms']} steps over 10 ms"
        f" of {loop['task_steps']:,}"
    )
    emit(f"target met: {result['met']}")


async def main(config: ReadersConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    report(result)
    write_result("api_tasks_readers", result, directory=results_dir)
    return result
