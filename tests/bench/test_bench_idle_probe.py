"""The idle-subscriber probe runs, and an idle runcast subscriber stays cheap.

``python -m bench._idle_probe runcast N`` serves N real loopback subscribers
(a load-generator process) and counts, inside the server, the trio tasks and
the bytes tracemalloc sees per connection. Traced bytes, not RSS: they do not
move with the allocator's slack or the machine. Issue 22's target is 20 KiB of
RSS per idle subscriber; before it, one held 5 tasks and ~38 KiB traced.
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
CONNECTIONS = 200
#: Traced bytes per idle connection: ~13.5-14.5 KiB measured (2026-12-07).
TRACED_CEILING = 18 * 1024

pytestmark = pytest.mark.integration


async def _probe(kind: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench._idle_probe", kind, str(CONNECTIONS), "--json"]
    with trio.fail_after(120):
        done = await trio.run_process(
            command, cwd=REPO, capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["connections"] == CONNECTIONS
    return result


async def test_an_idle_runcast_subscriber_holds_one_task_and_few_bytes() -> None:
    result = await _probe("runcast")
    assert result["tasks_per_connection"] == 1.0
    assert 0 < result["traced_per_connection_bytes"] < TRACED_CEILING
    assert result["by_line"], "no allocation breakdown"


async def test_the_trio_floor_is_one_task_and_a_socket() -> None:
    result = await _probe("trio")
    assert result["tasks_per_connection"] == 1.0
    assert 0 < result["traced_per_connection_bytes"] < 8 * 1024


def test_rss_only_leaves_tracemalloc_off() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench._idle_probe", "trio", "20", "--rss-only", "--json"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=120,
    )
    result = json.loads(done.stdout)
    assert result["traced"] is False
    assert result["traced_per_connection_bytes"] == 0
    assert result["by_file"] == []
