"""Cluster mode (issue 21): ``python -m bench --only cluster``.

Four measures against one throwaway ``redis-server`` (loopback, no persistence),
every runcast part a real process as an operator starts it:

1. tasks/s and usage records/s of one job file through 1, 2 and 4 ``runcast worker``
   processes vs ``runcast run`` of the same file, rounds alternated
   (``_cluster_throughput``);
2. events/s one serve node folds from the stream, vs reading it alone
   (``_serve_fold``'s fill and fold);
3. a task's start on a worker -> the ``session_update`` at a dashboard on a serve
   node, at ~1,000 events/s (``_cluster_latency``);
4. an operator's pause (and resume) -> the last of 3 workers applying it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

from ._cluster_latency import LatencySizes, measure_control, measure_end_to_end
from ._cluster_throughput import FoldSizes, ThroughputSizes, measure_fold, measure_throughput
from ._redis_server import running_redis_server
from ._report import emit, table, write_result

__all__ = ["ClusterConfig", "FoldSizes", "LatencySizes", "ThroughputSizes", "main", "report", "run"]


@attrs.frozen
class ClusterConfig:
    throughput: ThroughputSizes = attrs.field(factory=ThroughputSizes)
    fold: FoldSizes = attrs.field(factory=FoldSizes)
    latency: LatencySizes = attrs.field(factory=LatencySizes)


async def run(config: ClusterConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="runcast-bench-cluster-") as scratch:
        directory = Path(scratch)
        async with running_redis_server() as server:
            url = f"redis://{server.host}:{server.port}/0"
            result: dict[str, Any] = {"redis_version": server.version}
            took: dict[str, float] = {}
            sections: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
                "throughput": lambda: measure_throughput(directory, url, config.throughput),
                "fold": lambda: measure_fold(url, config.fold),
                "end_to_end": lambda: measure_end_to_end(directory, url, config.latency),
                "control": lambda: measure_control(directory, url, config.latency),
            }
            for name, measure in sections.items():
                started_at = time.perf_counter()
                result[name] = await measure()
                took[name] = time.perf_counter() - started_at
            result["section_seconds"] = took
    return result


def _ms(seconds: float) -> float:
    return seconds * 1000


def report(result: dict[str, Any]) -> None:
    throughput = result["throughput"]
    sizes = throughput["sizes"]
    emit(
        table(
            f"Cluster throughput: {sizes['tasks']:,} tasks of printf ({sizes['usage_lines']} "
            f"usage lines each), concurrency {sizes['concurrency']} per process, median of "
            f"{sizes['rounds']} rounds (redis {result['redis_version']})",
            ("side", "tasks/s", "usage records/s", "vs run", "runcast CPU ms/task", "redis"),
            [
                (
                    side,
                    figures["median_tasks_per_second"],
                    figures["median_usage_records_per_second"],
                    figures["median_ratio"],
                    figures["median_runcast_cpu_ms_per_task"],
                    figures["median_redis_cpu_ms_per_task"],
                )
                for side, figures in throughput["sides"].items()
            ],
        )
    )
    fold = result["fold"]
    emit(
        table(
            f"One serve node folding {fold['events']:,} stream events "
            f"(median of {fold['sizes']['rounds']})",
            ("what", "events/s"),
            [
                ("serve node (open_front, caught up)", fold["median_fold_events_per_second"]),
                ("read and json-parse alone", fold["median_read_alone_events_per_second"]),
            ],
        )
    )
    e2e = result["end_to_end"]
    emit(
        table(
            f"End to end at {e2e['task_events_per_second']:,.0f} task events/s "
            f"({e2e['tasks']} paced tasks, {e2e['sizes']['workers']} workers; target p99 < "
            f"{_ms(e2e['target_p99_seconds']):.0f} ms)",
            ("path", "samples", "p50 ms", "p99 ms", "max ms"),
            [
                _latency_row(
                    "task start -> session_update",
                    e2e["starts_measured"],
                    e2e,
                    "start_to_session_update",
                ),
                _latency_row(
                    "any task event -> its frame", e2e["frames_measured"], e2e, "event_to_frame"
                ),
            ],
        )
    )
    control = result["control"]
    emit(
        table(
            f"Control: command sent on a serve node's WebSocket -> worker applies it "
            f"({control['workers']} workers, {control['rounds']} rounds; target p99 < "
            f"{_ms(control['target_p99_seconds']):.0f} ms)",
            ("command", "last worker p50 ms", "p99 ms", "first worker p50 ms"),
            [
                (
                    op,
                    _ms(control["last_worker"][op]["p50_seconds"]),
                    _ms(control["last_worker"][op]["p99_seconds"]),
                    _ms(control["first_worker"][op]["p50_seconds"]),
                )
                for op in ("pause", "resume")
            ],
        )
    )


def _latency_row(name: str, samples: int, e2e: dict[str, Any], key: str) -> tuple[object, ...]:
    q = e2e[key]
    return (name, samples, _ms(q["p50_seconds"]), _ms(q["p99_seconds"]), _ms(q["max_seconds"]))


async def main(config: ClusterConfig, results_dir: Path) -> dict[str, Any]:
    result = await run(config)
    result["config"] = attrs.asdict(config)
    report(result)
    write_result("cluster", result, directory=results_dir)
    return result
