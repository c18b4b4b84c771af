"""A ``concurrency_changed`` is in the store's controls history (schema v6's column)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from _store_support import record_session

from api.cli import main
from api.store._store import SessionStore
from events import BudgetChanged, ConcurrencyChanged, Event, TaskQueued

SID = "s-concurrency"


async def _record(path: Path) -> None:
    events: list[Event] = [
        TaskQueued(task_id="a"),
        ConcurrencyChanged(concurrency=8, previous=4, reason="busy hour"),
        BudgetChanged(budget_usd=3.0),
    ]
    await record_session(path, SID, events)


def test_a_concurrency_change_is_a_control_with_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runcast.db"
    trio.run(_record, path)
    store = SessionStore.open(path)
    controls = store.controls(SID)
    store.close()
    assert [(c["kind"], c["actor"], c["reason"], c["concurrency"]) for c in controls] == [
        ("concurrency", "operator", "busy hour", 8),
        ("budget", "operator", "", None),
    ]
    assert main(["show", SID, "--store", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["controls"]
    assert shown[0]["concurrency"] == 8
    assert main(["show", SID, "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert any(
        line.split()[1:5] == ["concurrency", "operator", "concurrency", "8"]
        for line in out.splitlines()
        if line.split()
    )
