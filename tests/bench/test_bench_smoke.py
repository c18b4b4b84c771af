"""Each benchmark runs end to end at a tiny size, so ``make bench`` cannot rot.

The benchmarks run as ``python -m bench --smoke`` in a subprocess, as
``make bench`` runs them, writing their JSON into a temporary directory.
The benchmarks check their own work (completed-task counts, store totals
read back), so a broken pipeline fails here too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


async def _run_bench(results: Path, *names: str) -> subprocess.CompletedProcess[bytes]:
    only = [arg for name in names for arg in ("--only", name)]
    command = [sys.executable, "-m", "bench", "--smoke", "--results-dir", str(results), *only]
    with trio.fail_after(120):
        return await trio.run_process(command, cwd=REPO, capture_stdout=True, capture_stderr=True)


def _load(results: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    assert document["benchmark"] == name
    assert document["machine"]["nproc"] >= 1
    return document


async def test_throughput_ingest_and_burst_benchmarks_run(tmp_path: Path) -> None:
    finished = await _run_bench(tmp_path, "throughput", "ingest", "burst")
    output = finished.stdout.decode()

    assert "Executor throughput" in output
    throughput = _load(tmp_path, "executor_throughput")
    assert throughput["median_bare_tasks_per_second"] > 0
    assert throughput["median_ratio"] > 0
    assert sum(throughput["profile"]["stage_share"].values()) == pytest.approx(1.0)
    assert list(throughput["ablation_tasks_per_second"]) == [
        "bare nursery",
        "executor + publisher",
        "+ broadcaster",
        "+ metrics",
        "+ store (full pipeline)",
    ]
    assert throughput["store_alone"]["events_per_task"] == 3  # queued, started, completed

    ingest = _load(tmp_path, "usage_ingestion")
    assert set(ingest["variants"]) == {"as is", "heap settled at start-up (what runcast run does)"}
    for variant in ingest["variants"].values():
        assert variant["median_records_per_second"] > 0
        assert variant["worst_task_step_cpu_seconds"] > 0
        assert variant["loop_per_round"][0]["heartbeat_beats"] > 0
    assert ingest["first_price_in_process_seconds"] > 0
    assert set(ingest["stage_alone_records_per_second"]) >= {"parse"}

    burst = _load(tmp_path, "burst")
    assert burst["start_burst"]["final_counts_right"]
    assert burst["end_burst"]["final_counts_right"]
    assert burst["start_burst"]["median_updates"] >= 1


async def test_unknown_benchmark_is_refused(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "--only", "nonsense"]
    with trio.fail_after(30):
        finished = await trio.run_process(
            command, cwd=REPO, capture_stdout=True, capture_stderr=True, check=False
        )
    assert finished.returncode == 2
    assert b"invalid choice: 'nonsense'" in finished.stderr


async def test_fanout_benchmark_runs_every_server(tmp_path: Path) -> None:
    await _run_bench(tmp_path, "fanout")

    fanout = _load(tmp_path, "fanout")
    runs = {run["kind"]: run for run in fanout["runs"]}
    assert set(runs) == {"raw", "websockets", "runcast"}
    for run in runs.values():
        assert run["subscribers"] == 20
        assert run["loadgen_processes"] == 2
        assert run["server_cpu_per_subscriber_seconds_median"] > 0
        assert 0 < run["latency_p50_seconds"] <= run["latency_p99_seconds"]
    assert fanout["runcast_cost_ratio_vs_websockets"]["20"] > 0
    assert runs["runcast"]["delivery"]["direct"] > 0


async def test_memory_benchmark_samples_the_demo(tmp_path: Path) -> None:
    await _run_bench(tmp_path, "memory")

    memory = _load(tmp_path, "memory")
    assert len(memory["samples"]) >= 2
    assert memory["rss_end_bytes"] > 10 * 1024 * 1024  # a live Python server, not a stub
    assert memory["session_updates_received_by_dashboards"] >= 5  # one snapshot per dashboard
    retained = memory["retained_after_each_task"]
    assert retained["bytes_per_task"] == pytest.approx(
        sum(retained["bytes_per_task_by_file"].values())
    )
