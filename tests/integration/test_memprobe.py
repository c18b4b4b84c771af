"""``python -m bench._memprobe``: the demo with dashboards attached, looked at from inside."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent.parent


async def _probe(out: Path, *options: str) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "bench._memprobe", "--out", str(out), *options]
    command += ["--concurrency", "16", "--speed", "8", "--dashboards", "2"]
    with trio.fail_after(90):
        await trio.run_process(command, cwd=REPO, capture_stdout=True, capture_stderr=True)
    marks: list[dict[str, Any]] = json.loads(await trio.Path(out).read_text())
    return marks


async def test_probe_marks_say_what_grew(tmp_path: Path) -> None:
    marks = await _probe(tmp_path / "probe.json", "--marks", "1,2")
    assert [m["label"] for m in marks] == ["start", "1s", "2s"]
    first, last = marks[0], marks[-1]
    assert last["bounded"]["subscribers"] == 2
    assert last["bounded"]["published_total"] > first["bounded"]["published_total"] + 100
    assert last["bounded"]["history_events"] > first["bounded"]["history_events"]
    assert last["rss_bytes"] > 10 * 1024 * 1024
    assert last["glibc"]["in_use_bytes"] > 0
    # The history filled with published events: the growth says where they came from.
    assert last["objects_since_first"]["Published"] > 100
    where = [frame for row in last["growth_since_first_by_traceback"] for frame in row["where"]]
    assert any(frame.startswith("events/") for frame in where)


async def test_without_tracemalloc_pymalloc_reports_its_arenas(tmp_path: Path) -> None:
    # tracemalloc wraps the allocator, and sys._debugmallocstats then says nothing.
    marks = await _probe(tmp_path / "probe.json", "--marks", "1", "--no-tracemalloc")
    last = marks[-1]
    assert last["pymalloc"]["allocated_current"] >= 1
    assert last["pymalloc"]["allocated_blocks"] > 1024 * 1024
    assert "growth_since_first_by_traceback" not in last
