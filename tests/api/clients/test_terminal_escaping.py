"""Task-supplied text reaches a terminal or a spreadsheet as data, never as commands.

The exact input of issue 17 (item 8): a task reporting the model
``"\\x1b]0;PWNED\\x07\\x1b[2J..."`` (retitles the window, clears the screen) and a
task id carrying ESC; every writer of the CLI must show them escaped.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
from _store_support import record_session
from _terminal_support import as_terminal, styled, without_drawing
from hypothesis import given
from hypothesis import strategies as st

from api.cli._client_commands import describe_result, render_status
from api.cli._logging import configure_logging
from api.cli._main import main
from api.cli._store_commands import register
from api.cli._summary import format_summary
from api.clients._terminal import MAX_DRAWN_ROWS, csv_cell, json_text, printable
from api.clients._watch import Screen
from events import Event, SessionUpdate, TaskCompleted, TaskQueued, TaskStarted, TaskUsage
from executor import TaskInfo

EVIL_MODEL = '\x1b]0;PWNED\x07\x1b[2J=HYPERLINK("http://x")'
EVIL_ID = "evil\x1b[31m\u202etxt.exe"
FORMULA_ID = "=cmd|' /C calc'!A0"
# What a terminal or a reader could be made to obey: C0, DEL, C1, bidi controls.
RAW = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F))]
RAW += [chr(c) for c in range(0x2066, 0x206A)]


def assert_no_raw(text: str) -> None:
    found = sorted({repr(ch) for ch in text if ch in RAW and ch != "\n"})
    assert not found, f"raw control characters written: {found}"


def test_printable_escapes_visibly_and_keeps_the_rest() -> None:
    assert printable(EVIL_MODEL) == '\\x1b]0;PWNED\\x07\\x1b[2J=HYPERLINK("http://x")'
    assert printable(EVIL_ID) == "evil\\x1b[31m\\u202etxt.exe"
    assert printable("a\tb\nc\rd\x7f\x9b\u2066") == "a\\tb\\nc\\rd\\x7f\\x9b\\u2066"
    assert printable("\ud800") == "\\ud800"  # a lone surrogate, as JSON "\ud800" decodes
    assert printable("plain ascii, ünïcödé, 日本語, emoji 🙂, back\\slash") == (
        "plain ascii, ünïcödé, 日本語, emoji 🙂, back\\slash"
    )


# Surrogates included (hypothesis leaves them out by default).
@given(st.text(st.characters(exclude_categories=())))
def test_printable_leaves_nothing_a_terminal_obeys(text: str) -> None:
    shown = printable(text)
    assert_no_raw(shown)
    assert "\n" not in shown
    shown.encode("utf-8")  # no lone surrogate left to crash the write
    assert printable(shown) == shown


def test_csv_cells_are_not_formulas_and_numbers_stay_numbers() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx")] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\\tx",
        "'\\rx",
    ]
    assert [csv_cell(v) for v in ("gpt-4o", "a=b", "", None, 3, 0.25)] == [
        "gpt-4o",
        "a=b",
        "",
        None,
        3,
        0.25,
    ]


def test_json_text_is_the_same_json_without_raw_controls() -> None:
    value = {"model": EVIL_MODEL + "\x7f\x85\u202e", "n": 1}
    text = json_text(value)
    assert_no_raw(text)
    assert json.loads(text) == value


# -- the store's commands ---------------------------------------------------------


@pytest.fixture
def evil_store(tmp_path: Path) -> Path:
    path = tmp_path / "runcast.db"
    trio.run(_record_evil_tasks, path)
    return path


async def _record_evil_tasks(path: Path) -> None:
    events: list[Event] = []
    for task in (EVIL_ID, FORMULA_ID):
        events.append(TaskQueued(task_id=task, name="n\x1b[2J"))
        events.append(TaskStarted(task_id=task))
        events.append(
            TaskUsage(
                task_id=task,
                model=EVIL_MODEL,
                provider="-prov\x9b",
                input_tokens=10,
                output_tokens=5,
                cost_usd=0.001,
                cost_source="reported",
            )
        )
        events.append(TaskCompleted(task_id=task, exit_code=0))
    await record_session(path, "s-evil", events, job_key="k", end_status="finished")


def _call(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="runcast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "s-evil"],
        ["show", "s-evil", "--json"],
        ["sessions"],
        ["sessions", "--json"],
        ["export", "s-evil"],
        ["export", "s-evil", "--format", "jsonl"],
    ],
)
def test_store_commands_write_no_raw_controls(
    evil_store: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call([*argv, "--store", str(evil_store)]) == 0
    out = capsys.readouterr().out
    assert_no_raw(out)


def test_show_prints_the_evil_model_escaped(
    evil_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call(["show", "s-evil", "--store", str(evil_store)]) == 0
    out = capsys.readouterr().out
    assert printable(EVIL_MODEL) in out
    assert printable(EVIL_ID) in out
    # The table stays aligned: the COST column starts at the same place on every row.
    rows = [line for line in out.splitlines() if "completed" in line]
    assert len(rows) == 2
    assert len({row.index("$0.0010") for row in rows}) == 1


def test_show_json_keeps_the_exact_values(
    evil_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call(["show", "s-evil", "--store", str(evil_store), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document["models"]) == [EVIL_MODEL]
    assert sorted(t["task_id"] for t in document["tasks"]) == sorted([EVIL_ID, FORMULA_ID])


def test_export_csv_neutralises_formulas_and_escapes(
    evil_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call(["export", "s-evil", "--store", str(evil_store)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["task_id"] for r in rows) == sorted(["'" + FORMULA_ID, printable(EVIL_ID)])
    assert {r["model"] for r in rows} == {printable(EVIL_MODEL)}
    assert {r["provider"] for r in rows} == {"'-prov\\x9b"}
    # Numbers are written as numbers, not quoted text.
    assert {(r["input_tokens"], r["cost_usd"]) for r in rows} == {("10", "0.001")}


def test_export_jsonl_keeps_the_exact_values(
    evil_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call(["export", "s-evil", "--store", str(evil_store), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["model"] for r in rows} == {EVIL_MODEL}
    assert sorted(r["task_id"] for r in rows) == sorted([EVIL_ID, FORMULA_ID])


# -- the run summary, status, watch, errors and logs -------------------------------


def _task(task_id: str, error: str | None) -> TaskInfo:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return TaskInfo(
        task_id=task_id,
        name="",
        state="failed",
        attempts=1,
        started_at=moment,
        ended_at=moment,
        input_tokens=1,
        output_tokens=0,
        cache_read_tokens=0,
        cache_write_tokens=0,
        estimated_cost_usd=0.0,
        error=error,
        exit_code=1,
    )


def test_run_summary_escapes_task_ids_and_errors() -> None:
    tasks = [_task(EVIL_ID, "boom \x1b]0;PWNED\x07"), _task("plain", None)]
    text = format_summary(tasks, SessionUpdate(session_id="s", total_tokens=2, input_tokens=2))
    assert_no_raw(text)
    lines = text.splitlines()
    assert lines[1].startswith(printable(EVIL_ID))
    assert "boom \\x1b]0;PWNED\\x07" in lines[1]
    # Escaped before measuring: the STATE column is aligned.
    assert lines[1].index("failed") == lines[2].index("failed")


def _status() -> dict[str, Any]:
    row = {
        "task_id": EVIL_ID,
        "name": "n\x1b[2J",
        "state": "failed",
        "attempts": 1,
        "error": "bad\x1b]0;PWNED\x07\nsecond line",
    }
    return {"session": {"session_id": "s\x1b[2J"}, "tasks": [row]}


def test_status_lines_are_escaped() -> None:
    lines = render_status(_status())
    assert all("\n" not in line for line in lines)
    assert_no_raw("\n".join(lines))
    assert printable(EVIL_ID) in lines[3]
    assert "error: bad\\x1b]0;PWNED\\x07\\nsecond line" in lines[3]
    assert describe_result({"action": "cancel", "task_id": EVIL_ID, "status": "ok"}) == (
        f"cancel {printable(EVIL_ID)}: ok"
    )


def test_watch_screen_escapes_lines_notes_and_redraws() -> None:
    piped = io.StringIO()
    screen = Screen(piped, redraw=False)
    screen.note("server said \x1b]0;PWNED\x07")
    screen.line(f"task {EVIL_ID} failed: \x1b[2J")
    assert_no_raw(piped.getvalue())
    assert piped.getvalue().splitlines() == [
        "server said \\x1b]0;PWNED\\x07",
        f"task {printable(EVIL_ID)} failed: \\x1b[2J",
    ]


def test_watch_redraw_sends_only_its_own_sequences(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.clients._view import SessionView

    view = SessionView()
    view.load_tasks([{**_status()["tasks"][0], "state": "running"}])
    view.session = {"session_id": "s"}
    terminal = as_terminal(monkeypatch)
    with Screen(terminal, redraw=True) as screen:
        screen.status = "connected \x1b]0;PWNED\x07"
        screen.draw("ws://x", view, 0.0)
    drawn = terminal.getvalue()
    assert drawn.startswith("\x1b[?25l")  # rich's live display hides the cursor
    assert_no_raw(without_drawing(drawn))
    assert printable(EVIL_ID) in drawn
    assert "connected \\x1b]0;PWNED\\x07" in drawn


def test_store_tables_on_a_terminal_are_drawn_and_escaped(
    evil_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = as_terminal(monkeypatch, width=200)
    assert _call(["show", "s-evil", "--store", str(evil_store)]) == 0
    assert _call(["sessions", "--store", str(evil_store)]) == 0
    drawn = terminal.getvalue()
    assert styled(drawn)  # drawn by rich: bold headers
    shown = without_drawing(drawn)
    assert_no_raw(shown)
    assert printable(EVIL_MODEL) in shown
    assert printable(EVIL_ID) in shown
    rows = [line for line in shown.splitlines() if "completed" in line]
    assert len(rows) == 2
    assert len({row.index("$0.0010") for row in rows}) == 1
    assert "SESSION" in shown
    assert "s-evil" in shown


def test_run_summary_on_a_terminal_is_drawn_and_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    as_terminal(monkeypatch, width=200)
    tasks = [_task(EVIL_ID, "boom \x1b]0;PWNED\x07"), _task("plain", None)]
    session = SessionUpdate(session_id="s[bold]", total_tokens=2, input_tokens=2)
    plain = format_summary(tasks, session)
    drawn = format_summary(tasks, session, terminal=True)
    assert styled(drawn)
    assert not styled(plain)
    lines = without_drawing(drawn).splitlines()
    assert_no_raw("\n".join(lines))
    assert lines[0].split()[:3] == ["TASK", "STATE", "TRIES"]
    assert lines[2].startswith(printable(EVIL_ID))
    assert "boom \\x1b]0;PWNED\\x07" in lines[2]
    assert lines[2].index("failed") == lines[3].index("failed")
    # The totals follow as in the plain summary; the session id is text, not markup.
    assert lines[-4:] == plain.splitlines()[-4:]
    assert lines[-1].endswith("session: s[bold]")
    # A summary longer than a few screens stays plain: rich would take seconds to lay it out.
    many = [_task(f"t{n}", None) for n in range(MAX_DRAWN_ROWS + 1)]
    assert not styled(format_summary(many, session, terminal=True))


def test_cli_error_lines_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no\x1b]0;PWNED\x07.db"
    try:
        assert main(["sessions", "--store", str(missing)]) == 1
    finally:
        structlog.reset_defaults()  # main configured logging to this test's stderr
    err = capsys.readouterr().err
    assert_no_raw(err)
    assert "no\\x1b]0;PWNED\\x07.db" in err


def test_console_logs_escape_task_text() -> None:
    stream = io.StringIO()
    configure_logging(json=False, stream=stream)
    try:
        log = structlog.get_logger("test")
        log.warning("event \x1b[2J", task_id=EVIL_ID, error="x\x1b]0;PWNED\x07")
        try:
            raise ValueError("bad \x1b[2J\u202e")
        except ValueError:
            log.exception("failed")
    finally:
        structlog.reset_defaults()
    text = stream.getvalue()
    assert_no_raw(text)
    assert "event \\x1b[2J" in text
    assert f"task_id={printable(EVIL_ID)}" in text
    assert "ValueError: bad \\x1b[2J\\u202e" in text
    assert "Traceback (most recent call last):\n" in text  # still one frame per line
