"""``runcast show`` (text) prints the pause, resume and budget history that ``--json`` has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from _store_support import record_session

from api.cli import main
from events import BudgetChanged, Event, ExecutorPaused, ExecutorResumed, TaskQueued

SID = "s-controls"


async def _recorded(path: Path, events: list[Event]) -> None:
    await record_session(path, SID, [TaskQueued(task_id="a"), *events])


def test_show_text_lists_controls_after_the_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runcast.db"
    history: list[Event] = [
        ExecutorPaused(by="operator", reason="lunch \x1b[31mred"),
        BudgetChanged(budget_usd=2.5, by="operator", reason="more"),
        ExecutorResumed(by="operator"),
        BudgetChanged(budget_usd=None, by="operator"),
    ]
    trio.run(_recorded, path, history)
    assert main(["show", SID, "--store", str(path), "--json"]) == 0
    controls = json.loads(capsys.readouterr().out)["controls"]
    assert main(["show", SID, "--store", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("AT ")))
    assert header > lines.index(next(line for line in lines if line.startswith("MODEL")))
    assert lines[header].split() == ["AT", "CHANGE", "BY", "BUDGET", "REASON"]
    rows = [line.split(maxsplit=4) for line in lines[header + 1 :]]
    assert [row[:4] for row in rows] == [
        [controls[0]["at"], "pause", "operator", "-"],
        [controls[1]["at"], "budget", "operator", "$2.5000"],
        [controls[2]["at"], "resume", "operator", "-"],
        [controls[3]["at"], "budget", "operator", "none"],
    ]
    assert rows[0][4] == "lunch \\x1b[31mred"  # escaped: no terminal control reaches stdout
    assert rows[1][4] == "more"
    assert "\x1b" not in out


def test_show_text_says_when_nothing_was_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runcast.db"
    trio.run(_recorded, path, [])
    assert main(["show", SID, "--store", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no pause, resume or budget changes"
