"""``python -m bench --smoke --only startup`` runs end to end and writes its figures.

The target (<= 2x importing trio and trio-websocket) is not asserted here: one
pair of runs on a shared machine is noise. What this guards is the benchmark
itself: every client command it times still runs to "unreachable" (exit 3),
which the benchmark checks, so a command that broke or changed fails here; and
against a live server, ``status`` and ``watch`` draw styled on a pseudo-terminal
and ``status`` prints plain text when piped (checked by the benchmark too).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


async def test_startup_benchmark_runs(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "--smoke", "--results-dir", str(tmp_path)]
    with trio.fail_after(120):
        finished: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [*command, "--only", "startup"], cwd=REPO, capture_stdout=True, capture_stderr=True
        )
    assert "Client start-up vs python -c import trio, trio_websocket" in finished.stdout.decode()
    document = json.loads((tmp_path / "startup.json").read_text())
    assert document["benchmark"] == "startup"
    assert document["target_ratio"] == 2.0
    assert set(document["commands"]) == {"status", "watch"}
    for figures in document["commands"].values():
        assert figures["median_wall_ratio"] > 0
        assert figures["median_wall_seconds"] > 0
    assert document["worst_median_wall_ratio"] == max(
        figures["median_wall_ratio"] for figures in document["commands"].values()
    )
    drawn = document["drawn"]
    assert set(drawn) == {"status, terminal", "status, piped", "watch, terminal"}
    assert all(figures["median_wall_ratio"] > 0 for figures in drawn.values())
    assert "Drawing against a live server" in finished.stdout.decode()
