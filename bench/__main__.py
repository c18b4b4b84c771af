"""``python -m bench``: run runcast's benchmarks; see bench/README.md."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from . import (
    _burst,
    _cluster,
    _fanout,
    _ingest,
    _memory,
    _readers,
    _redis_clients,
    _startup,
    _throughput,
)
from ._report import RESULTS_DIR, Machine, emit

Mode = str  # "full" | "quick" | "smoke"


@attrs.frozen
class Options:
    mode: Mode
    results_dir: Path
    memory_seconds: float | None = None


Runner = Callable[[Options], Awaitable[dict[str, Any]]]


async def _throughput_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _throughput.ThroughputConfig(),
        "quick": _throughput.ThroughputConfig(
            tasks=20_000,
            profile_tasks=5_000,
            ablation_tasks=3_000,
            ablation_rounds=2,
            loop_tasks=10_000,
        ),
        "smoke": _throughput.ThroughputConfig(
            tasks=300,
            batch=100,
            rounds=1,
            profile_tasks=100,
            ablation_tasks=100,
            ablation_rounds=1,
            loop_tasks=100,
            loop_rounds=1,
        ),
    }[options.mode]
    return await _throughput.main(config, options.results_dir)


async def _ingest_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _ingest.IngestConfig(),
        "quick": _ingest.IngestConfig(records=5_000, profile_records=1_000),
        "smoke": _ingest.IngestConfig(records=100, rounds=1, profile_records=50),
    }[options.mode]
    return await _ingest.main(config, options.results_dir)


async def _burst_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _burst.BurstConfig(),
        "quick": _burst.BurstConfig(rounds=3),
        "smoke": _burst.BurstConfig(tasks=50, rounds=1, settle_seconds=0.2),
    }[options.mode]
    return await _burst.main(config, options.results_dir)


async def _fanout_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _fanout.FanoutConfig(),
        "quick": _fanout.FanoutConfig(sizes=(100, 1_000), rounds=10),
        "smoke": _fanout.FanoutConfig(sizes=(20,), rounds=2, warmup=1, clients_per_process=10),
    }[options.mode]
    return await _fanout.main(config, options.results_dir)


async def _memory_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _memory.MemoryConfig(),
        "quick": _memory.MemoryConfig(seconds=30.0, warm_events=2_000, warm_task_ends=1_000),
        "smoke": _memory.MemoryConfig(
            seconds=2.0,
            concurrency=4,
            warm_events=20,
            warm_task_ends=0,
            retain_tasks=200,
            retain_warmup=100,
            retain_fill=100,
        ),
    }[options.mode]
    if options.memory_seconds is not None:
        config = attrs.evolve(config, seconds=options.memory_seconds)
    return await _memory.main(config, options.results_dir)


async def _readers_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _readers.ReadersConfig(),
        "quick": _readers.ReadersConfig(seconds=5.0),
        "smoke": _readers.ReadersConfig(
            tasks=300,
            readers=2,
            reader_processes=1,
            page_limit=100,
            seconds=0.5,
            warmup_seconds=0.2,
        ),
    }[options.mode]
    return await _readers.main(config, options.results_dir)


async def _startup_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _startup.StartupConfig(),
        "quick": _startup.StartupConfig(runs=7),
        "smoke": _startup.StartupConfig(runs=1, warmup=0, commands=("status", "watch")),
    }[options.mode]
    return await _startup.main(config, options.results_dir)


async def _redis_clients_run(options: Options) -> dict[str, Any]:
    full = _redis_clients.FULL_SIZES
    config = {
        "full": _redis_clients.RedisClientsConfig(),
        "quick": _redis_clients.RedisClientsConfig(
            rounds=3,
            sizes=attrs.evolve(
                full,
                appends=2_000,
                batches=100,
                stream_seconds=2.0,
                scripts=2_000,
                backlog=20_000,
            ),
        ),
        "smoke": _redis_clients.RedisClientsConfig(
            rounds=1,
            sizes=attrs.evolve(
                full,
                warmup=10,
                appends=50,
                batches=3,
                stream_seconds=0.1,
                scripts=50,
                appenders=2,
                appends_each=20,
                backlog=2_000,
            ),
        ),
    }[options.mode]
    return await _redis_clients.main(config, options.results_dir)


async def _cluster_run(options: Options) -> dict[str, Any]:
    config = {
        "full": _cluster.ClusterConfig(),
        "quick": _cluster.ClusterConfig(
            throughput=_cluster.ThroughputSizes(tasks=500, rounds=2),
            fold=_cluster.FoldSizes(tasks=2_000, rounds=2),
            latency=_cluster.LatencySizes(seconds=10.0, control_rounds=20),
        ),
        "smoke": _cluster.ClusterConfig(
            throughput=_cluster.ThroughputSizes(
                tasks=20, usage_lines=2, concurrency=4, workers=(2,), rounds=1
            ),
            fold=_cluster.FoldSizes(tasks=50, rounds=1),
            latency=_cluster.LatencySizes(
                events_per_second=100,
                workers=1,
                task_seconds=0.3,
                seconds=1.0,
                warmup_seconds=0.0,
                control_workers=2,
                control_rounds=2,
            ),
        ),
    }[options.mode]
    return await _cluster.main(config, options.results_dir)


BENCHMARKS: dict[str, Runner] = {
    "fanout": _fanout_run,
    "memory": _memory_run,
    "throughput": _throughput_run,
    "ingest": _ingest_run,
    "burst": _burst_run,
    "readers": _readers_run,
    "startup": _startup_run,
    "redis-clients": _redis_clients_run,
    "cluster": _cluster_run,
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of runcast against baselines measured in the same run. "
        "Each prints a table and writes bench/results/NAME.json.",
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--quick", action="store_true", help="smaller sizes and fewer rounds (about 2 minutes)"
    )
    sizes.add_argument(
        "--smoke", action="store_true", help="tiny sizes that only prove each benchmark runs"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help=f"where the JSON results go (default: {RESULTS_DIR})",
    )
    parser.add_argument(
        "--memory-seconds",
        type=float,
        metavar="S",
        help="seconds the memory benchmark measures after its warm-up (default 60; 30 with "
        "--quick)",
    )
    args = parser.parse_args(argv)
    if args.memory_seconds is not None and args.memory_seconds <= 0:
        parser.error(f"--memory-seconds must be > 0, got {args.memory_seconds}")
    return args


async def _run_all(names: Sequence[str], options: Options) -> None:
    for name in names:
        started = time.perf_counter()
        emit(f"\n== {name} ({options.mode}) ==")
        await BENCHMARKS[name](options)
        emit(f"({name}: {time.perf_counter() - started:.1f} s)")


def _quiet_logs() -> None:
    """runcast's own warnings (e.g. store back-pressure) still show, on stderr."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    _quiet_logs()
    mode: Mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    names = args.only or list(BENCHMARKS)
    emit(f"machine: {Machine.current().describe()}")
    options = Options(mode, args.results_dir, args.memory_seconds)
    trio.run(_run_all, names, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
