"""``python -m bench --smoke --only cluster`` (issue 21) runs end to end and writes its figures.

The targets (p99 < 100 ms) are not asserted: a smoke run on a shared machine is noise.
What this guards is the benchmark itself, against its own ``redis-server`` and real
``runcast run``/``submit``/``worker``/``serve`` processes: each throughput round checks
that every task completed and every usage record reached the stream, the fold checks
the serve node read the whole stream, and a latency needs its frames and log lines to
have arrived; so a cluster part that broke (or a log line the control measure reads
that changed) fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from bench._cluster_latency import EndToEndTally
from bench._cluster_procs import log_time, printf_command, process_cpu_seconds, usage_line

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed (./scripts/ensure-system-deps installs it)",
)
async def test_cluster_benchmark_runs(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "--smoke", "--only", "cluster"]
    with trio.fail_after(120):
        finished = await trio.run_process(
            [*command, "--results-dir", str(tmp_path)],
            cwd=REPO,
            capture_stdout=True,
            capture_stderr=True,
        )
    output = finished.stdout.decode()
    assert "Cluster throughput" in output
    assert "Control: command sent" in output
    document = json.loads((tmp_path / "cluster.json").read_text())
    assert document["benchmark"] == "cluster"
    sides = document["throughput"]["sides"]
    assert list(sides) == ["run", "2 worker(s)"]
    assert sides["run"]["median_ratio"] == 1.0
    for figures in sides.values():
        assert figures["median_tasks_per_second"] > 0
        # 2 usage lines a task (the smoke size): records/s is twice tasks/s.
        assert figures["median_usage_records_per_second"] == pytest.approx(
            2 * figures["median_tasks_per_second"]
        )
    fold = document["fold"]
    # Per task: queued (submit), started, 5 usage, 3 output, end.
    assert fold["events"] == 50 * (1 + 1 + 5 + 3 + 1)
    assert fold["median_fold_events_per_second"] > 0
    e2e = document["end_to_end"]
    assert e2e["starts_measured"] == e2e["tasks"]
    quantiles = e2e["start_to_session_update"]
    assert 0 < quantiles["p50_seconds"] <= quantiles["p99_seconds"] <= quantiles["max_seconds"]
    control = document["control"]
    for op in ("pause", "resume"):
        assert [len(r) for r in control["per_round_seconds"][op]] == [2, 2]  # both workers
        assert control["last_worker"][op]["p50_seconds"] > 0


def test_the_trivial_task_prints_one_usage_line_per_record() -> None:
    argv = printf_command(3)
    assert argv[0] == "printf"
    printed = argv[1].replace("\\n", "\n").replace("%%", "%")
    lines = printed.splitlines()
    assert lines == [usage_line(0), usage_line(1), usage_line(2)]
    assert all(json.loads(line)["usage"]["output_tokens"] == 10 for line in lines)


def _frame(kind: str, when: str, task_id: str = "t1") -> dict[str, object]:
    return {"type": "event", "event": kind, "task_id": task_id, "time": when, "data": {}}


def test_a_start_is_timed_to_the_next_session_update_after_the_warm_up() -> None:
    tally = EndToEndTally(warmup_seconds=1.0)
    epoch = datetime(2026, 12, 7, tzinfo=UTC).timestamp()

    tally.take(_frame("task_started", "2026-12-07T00:00:00.000000Z"), epoch + 0.002)
    tally.take(_frame("session_update", "2026-12-07T00:00:00.010000Z", "*"), epoch + 0.010)
    tally.take(_frame("task_started", "2026-12-07T00:00:01.000000Z", "t2"), epoch + 1.003)
    tally.take(_frame("task_usage", "2026-12-07T00:00:01.001000Z", "t2"), epoch + 1.004)
    tally.take(_frame("session_update", "2026-12-07T00:00:01.040000Z", "*"), epoch + 1.045)
    tally.take(_frame("task_completed", "2026-12-07T00:00:02.000000Z", "t2"), epoch + 2.001)

    # The first start fell in the warm-up; the second waited for the update at 1.045.
    assert tally.start_to_update == [pytest.approx(0.045, abs=1e-6)]
    assert tally.frame_latency == [
        pytest.approx(0.003, abs=1e-6),
        pytest.approx(0.003, abs=1e-6),
        pytest.approx(0.001, abs=1e-6),
    ]
    assert (tally.task_events, tally.ended) == (4, 1)


def test_worker_log_times_and_process_cpu_are_read() -> None:
    record = {"event": "control", "op": "pause", "timestamp": "2026-12-07T01:02:03.250000Z"}
    assert log_time(record) == datetime(2026, 12, 7, 1, 2, 3, 250000, tzinfo=UTC).timestamp()
    sum(range(2_000_000))  # some CPU of this process
    assert process_cpu_seconds(os.getpid()) > 0
