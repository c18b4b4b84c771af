"""A cluster serve node's snapshots carry the seq of the last event before them (they
take none of their own): the terminal view must not take that for a restarted server."""

from __future__ import annotations

from typing import Any

from api.clients._view import SessionView


def _frame(name: str, seq: int, data: dict[str, Any], task_id: str = "*") -> dict[str, Any]:
    time = "2026-01-01T00:00:00.000000Z"
    return {
        "type": "event",
        "event": name,
        "task_id": task_id,
        "seq": seq,
        "time": time,
        "data": data,
    }


def test_a_snapshot_with_the_last_events_seq_is_not_a_restart() -> None:
    view = SessionView()
    view.load_tasks([{"task_id": "t1", "name": "x", "state": "running"}])
    session = {"session_id": "cluster-a", "duration_seconds": 1}
    assert view.apply(_frame("session_update", 4, session), 0) is None
    view.apply(_frame("task_usage", 5, {"input_tokens": 3}, task_id="t1"), 0)
    # Folded after event 5: numbered 5 too; and a second one with no event between.
    assert view.apply(_frame("session_update", 5, session), 0) is None
    assert view.apply(_frame("session_update", 5, session), 0) is None
    assert not view.needs_resync
    assert set(view.tasks) == {"t1"}
    assert view.last_seq == 5


def test_a_snapshot_numbered_before_what_was_seen_is_still_a_restart() -> None:
    view = SessionView()
    view.load_tasks([])
    session = {"session_id": "cluster-a"}
    view.apply(_frame("session_update", 9, session), 0)
    notice = view.apply(_frame("session_update", 8, session), 0)
    assert notice == "server restarted: new session"
    assert view.needs_resync
