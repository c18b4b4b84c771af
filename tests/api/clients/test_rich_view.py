"""``status`` and ``watch`` on a terminal, drawn with rich; piped, the plain lines as before.

What a task, job file or server sends reaches the terminal as data: a name holding
rich markup (``[bold]``) is printed as written, and ESC, OSC and bidi controls are
escaped (``printable``) as on every other path; only rich's own styles and cursor
moves are sent raw.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _terminal_support import Terminal, as_terminal, styled, without_drawing

from api.cli._client_commands import render_status, write_status
from api.clients import MAX_DRAWN_ROWS, printable
from api.clients._view import SessionView
from api.clients._watch import Screen, can_redraw

T0 = datetime(2026, 12, 7, 0, 0, 0, tzinfo=UTC)
MARKUP_NAME = "[bold]loud \x1b[31m"
EVIL_ID = "evil\x1b]0;PWNED\x07\u202etxt"
RAW = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x202E)]


def assert_only_drawing_is_raw(text: str) -> str:
    """``text`` with rich's sequences removed, checked to hold no other raw control."""
    plain = without_drawing(text)
    found = sorted({repr(ch) for ch in plain if ch in RAW and ch != "\n"})
    assert not found, f"raw control characters written: {found}"
    return plain


def _status() -> dict[str, Any]:
    session = {
        "session_id": "s",
        "duration_seconds": 61,
        "total_tokens": 1200,
        "input_tokens": 1000,
        "output_tokens": 200,
        "estimated_cost_usd": 0.0123,
        "tasks_running": 1,
        "tasks_failed": 1,
        "is_paused": True,
    }
    started = (T0 - timedelta(seconds=65)).isoformat()
    tasks = [
        {
            "task_id": "t1",
            "name": MARKUP_NAME,
            "state": "running",
            "attempts": 1,
            "started_at": started,
            "input_tokens": 1000,
            "estimated_cost_usd": 0.0123,
        },
        {
            "task_id": EVIL_ID,
            "name": "beta",
            "state": "failed",
            "attempts": 2,
            "error": "boom \x1b[2J\nsecond line",
            "unpriced_tokens": 5,
        },
    ]
    return {"session": session, "tasks": tasks}


def test_status_on_a_terminal_is_a_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = as_terminal(monkeypatch, width=160)
    write_status(_status(), terminal, T0)
    drawn = terminal.getvalue()
    assert styled(drawn)
    lines = assert_only_drawing_is_raw(drawn).splitlines()
    assert lines[0].startswith("session 1m01s | tokens 1,200 (in 1,000 out 200")
    assert "| PAUSED |" in lines[0]
    header = lines[2].split()
    assert header == [
        "TASK",
        "NAME",
        "STATE",
        "ATT",
        "ELAPSED",
        "IN",
        "OUT",
        "CACHE",
        "R/W",
        "COST",
    ]
    assert set(lines[3]) == {"─"}
    # Markup in a name is text: the brackets are printed, nothing turns bold.
    assert lines[4].split()[:4] == ["t1", "[bold]loud", "\\x1b[31m", "running"]
    assert lines[4].split()[-5:] == ["1m05s", "1,000", "0", "0/0", "$0.0123"]
    assert lines[5].split()[:3] == [printable(EVIL_ID), "beta", "failed"]
    assert lines[5].endswith("$0.00*")
    # The error is a paragraph after the table, whole and escaped.
    assert lines[7] == f"{printable(EVIL_ID)}: boom \\x1b[2J\\nsecond line"


def test_status_state_and_pause_are_coloured(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = as_terminal(monkeypatch)
    write_status(_status(), terminal, T0)
    drawn = terminal.getvalue()
    assert "\x1b[1;33mPAUSED\x1b[0m" in drawn
    assert "\x1b[1;31mfailed \x1b[0m" in drawn
    assert "\x1b[36mrunning\x1b[0m" in drawn


def test_status_on_a_narrow_terminal_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = as_terminal(monkeypatch, width=60)
    write_status(_status(), terminal, T0)
    plain = assert_only_drawing_is_raw(terminal.getvalue())
    assert max(len(line) for line in plain.splitlines()) <= 60
    # Folded, not cut: every character of the id and the error is still there.
    joined = "".join(line.strip() for line in plain.splitlines())
    assert printable(EVIL_ID) in joined.replace(" ", "")
    assert "secondline" in joined.replace(" ", "")
    assert "$0.0123" in plain


def test_status_without_tasks_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = as_terminal(monkeypatch)
    write_status({"session": {"session_id": "s"}, "tasks": []}, terminal, T0)
    assert without_drawing(terminal.getvalue()).splitlines()[1:] == ["", "no tasks"]


def test_piped_status_is_the_plain_lines_unchanged() -> None:
    piped = io.StringIO()
    write_status(_status(), piped, T0)
    assert piped.getvalue() == "\n".join(render_status(_status(), T0)) + "\n"
    assert "\x1b" not in piped.getvalue()


def test_a_long_status_is_plain_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich lays a table out at ~0.5 ms a row: 10,000 tasks would take seconds to draw.
    def status(rows: int) -> dict[str, Any]:
        tasks = [{"task_id": f"t{n}", "state": "completed"} for n in range(rows)]
        return {"session": {"session_id": "s"}, "tasks": tasks}

    terminal = as_terminal(monkeypatch)
    write_status(status(MAX_DRAWN_ROWS), terminal, T0)
    assert styled(terminal.getvalue())
    longer = Terminal()
    write_status(status(MAX_DRAWN_ROWS + 1), longer, T0)
    assert longer.getvalue() == "\n".join(render_status(status(MAX_DRAWN_ROWS + 1), T0)) + "\n"


# -- watch --------------------------------------------------------------------------


def _view(running: int) -> SessionView:
    view = SessionView()
    started = (T0 - timedelta(seconds=5)).isoformat()
    rows = [
        {"task_id": f"t{i}", "name": MARKUP_NAME, "state": "running", "started_at": started}
        for i in range(running)
    ]
    view.load_tasks([*rows, {"task_id": EVIL_ID, "state": "running", "started_at": started}])
    view.session = {"session_id": "s", "tasks_running": running + 1}
    view.stale = False
    return view


def _frames(drawn: str) -> list[list[str]]:
    """Each frame the live display drew, as lines (a redraw starts at its heading)."""
    plain = assert_only_drawing_is_raw(drawn)
    return [("runcast" + part).splitlines() for part in plain.split("runcast")[1:]]


def test_watch_on_a_terminal_redraws_live_and_gives_the_cursor_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = as_terminal(monkeypatch, width=120, height=40)
    view = _view(2)
    with Screen(terminal, redraw=True) as screen:
        screen.note("connected \x1b]0;PWNED\x07")
        screen.draw("ws://x", view, 0.0)
        del view.tasks["t0"]
        screen.draw("ws://x", view, 3.0)
    drawn = terminal.getvalue()
    assert drawn.startswith("\x1b[?25l")  # cursor hidden while live...
    assert drawn.endswith("\x1b[?25h")  # ...and shown again when it ends
    assert "\x1b[1A" in drawn  # the second frame was drawn over the first
    first, second, last = _frames(drawn)
    assert first[0] == "runcast watch ws://x - connected \\x1b]0;PWNED\\x07"
    assert first[1].startswith("session 0s | ")
    assert first[2] == "running tasks: 3"
    assert [line.split()[0] for line in first[5:]] == ["t0", "t1", printable(EVIL_ID)]
    assert first[5].split()[1:3] == ["[bold]loud", "\\x1b[31m"]
    assert second[1].startswith("session 3s | ")
    assert second[2] == "running tasks: 2"
    assert last == second  # stopping draws the last frame once more, then a newline


def test_watch_shows_what_fits_and_counts_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = as_terminal(monkeypatch, width=200, height=10)
    screen = Screen(terminal, redraw=True)
    screen.draw("ws://x", _view(20), 0.0)
    screen.close()
    screen.close()  # once is enough; twice is harmless
    frame = _frames(terminal.getvalue())[-1]
    assert len(frame) <= 10
    assert frame[2] == "running tasks: 21"
    assert frame[-1] == f"... and {21 - (len(frame) - 6)} more"


def test_a_piped_watch_prints_lines_and_draws_nothing() -> None:
    piped = io.StringIO()
    screen = Screen(piped, redraw=False)
    screen.note("connected")
    screen.draw("ws://x", _view(1), 0.0)
    screen.close()
    assert piped.getvalue() == "connected\n"


def test_watch_redraws_only_on_a_terminal_that_moves_its_cursor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = as_terminal(monkeypatch)
    assert can_redraw(terminal)
    assert not can_redraw(io.StringIO())
    for dumb in ("dumb", "unknown"):
        monkeypatch.setenv("TERM", dumb)
        assert not can_redraw(terminal)  # rich would draw nothing there until the end


def test_terminal_support_sees_what_a_task_could_send() -> None:
    # The check above would catch a raw sequence a task sent: only rich's own are removed.
    for raw in ("\x1b]0;PWNED\x07", "\x1b[2J", "\u202e", "\x9b"):
        with pytest.raises(AssertionError, match="raw control"):
            assert_only_drawing_is_raw(f"\x1b[1mok\x1b[0m{raw}")
    assert Terminal().isatty()


def test_the_drawn_names_are_public_and_imported_on_first_use() -> None:
    import api.clients
    from api.clients import _rich_view

    drawn = ("data_table", "print_table", "render_text", "shown", "status_view")
    for name in (*drawn, "terminal_console"):
        assert name in api.clients.__all__
        assert getattr(api.clients, name) is getattr(_rich_view, name)
    assert set(api.clients.__all__) <= set(dir(api.clients))
