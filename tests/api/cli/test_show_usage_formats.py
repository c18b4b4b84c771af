"""``runcast show`` and ``export`` say which output format each task's usage was read in."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import trio
from _store_support import record_session

from api.cli import main
from events import Event, TaskQueued, TaskUsage

SID = "s-formats"


async def _recorded(path: Path) -> None:
    events: list[Event] = [
        TaskQueued(task_id="agent"),
        TaskQueued(task_id="lib"),
        TaskUsage(task_id="agent", model="m", input_tokens=1, source="codex-exec"),
        TaskUsage(task_id="lib", model="m", input_tokens=2),
    ]
    await record_session(path, SID, events)


def test_show_and_export_name_the_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runcast.db"
    trio.run(_recorded, path)
    assert main(["show", SID, "--store", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("TASK"))
    assert "USAGE FORMAT" in header
    agent = next(line for line in lines if line.startswith("agent"))
    lib = next(line for line in lines if line.startswith("lib"))
    assert "codex-exec" in agent.split()
    assert "-" in lib.split()
    assert main(["show", SID, "--store", str(path), "--json"]) == 0
    tasks = json.loads(capsys.readouterr().out)["tasks"]
    assert [task["usage_formats"] for task in tasks] == [["codex-exec"], []]
    assert main(["export", SID, "--store", str(path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(row["task_id"], row["source"]) for row in rows] == [
        ("agent", "codex-exec"),
        ("lib", ""),
    ]
