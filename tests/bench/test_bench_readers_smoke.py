"""The ``readers`` benchmark (issue 17, item 7) runs end to end at a tiny size.

As ``tests/bench/test_bench_smoke.py`` does for the others: ``python -m bench --smoke
--only readers`` in a subprocess, its JSON read back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


async def test_readers_benchmark_reads_every_page_and_probes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "--smoke", "--results-dir", str(tmp_path)]
    with trio.fail_after(120):
        finished = await trio.run_process(
            [*command, "--only", "readers"], cwd=REPO, capture_stdout=True, capture_stderr=True
        )
    assert b"/healthz with 2 readers of /api/tasks at 300 tasks" in finished.stdout
    result = json.loads((tmp_path / "api_tasks_readers.json").read_text())
    assert result["benchmark"] == "api_tasks_readers"
    for phase in ("healthz_idle", "healthz_loaded"):
        assert result[phase]["probes"] > 0
        assert result[phase]["failures"] == []
        assert 0 < result[phase]["p50_seconds"] <= result[phase]["p99_seconds"]
    readers = result["readers"]
    assert readers["full_reads"] > 0
    assert readers["pages"] >= 3 * readers["full_reads"]  # 300 tasks, 100 a page
    assert readers["failed"] == 0
    assert result["loop_while_loaded"]["task_steps"] > 0
    assert set(result["server_refused_by_status"]) == {"401", "403", "421", "503"}
