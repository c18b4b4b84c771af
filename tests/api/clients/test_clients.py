"""The client view model, its text form, the backoff and the argument parsing (no I/O)."""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.cli._client_commands import _token, describe_result, register, render_status
from api.clients import DEFAULT_URL
from api.clients._connection import Backoff, decode_frame, http_url
from api.clients._exceptions import ClientError
from api.clients._money import format_usd
from api.clients._view import (
    SessionView,
    TaskLine,
    cost_text,
    elapsed_text,
    format_duration,
    format_session_line,
    format_task_table,
)

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def event(name: str, seq: int, data: dict[str, Any], task_id: str = "*", at: int = 0) -> Any:
    moment = (T0 + timedelta(seconds=at)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "type": "event",
        "event": name,
        "task_id": task_id,
        "seq": seq,
        "time": moment,
        "data": data,
    }


def session(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "duration_seconds": 61,
        "total_tokens": 1500,
        "input_tokens": 1000,
        "output_tokens": 300,
        "cache_read_tokens": 200,
        "cache_write_tokens": 0,
        "estimated_cost_usd": 0.0123,
        "tasks_running": 2,
        "tasks_queued": 5,
        "tasks_completed": 3,
        "tasks_failed": 1,
        "tasks_cancelled": 0,
        "is_paused": False,
        "session_id": "s1",
        "budget_usd": None,
        "budget_remaining_usd": None,
    }
    data.update(fields)
    return data


def test_session_line_shows_every_figure() -> None:
    line = format_session_line(session(), 61)
    assert line == (
        "session 1m01s | tokens 1,500 (in 1,000 out 300 cache r200/w0) | $0.0123 | "
        "running 2 queued 5 done 3 failed 1 | live | no budget"
    )


def test_session_line_paused_with_budget_and_cancelled() -> None:
    line = format_session_line(
        session(is_paused=True, budget_usd=2.0, estimated_cost_usd=1.5, tasks_cancelled=4), 3725
    )
    assert "session 1h02m05s" in line
    assert "cancelled 4" in line
    assert "| PAUSED |" in line
    assert line.endswith("budget $1.50 of $2.00 (75%)")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "none"),
        (0, "$0.00"),
        (0.5, "$0.50"),
        (0.01234, "$0.0123"),
        (1234.5, "$1,234.50"),
        ("x", "?"),
    ],
)
def test_format_usd(value: object, text: str) -> None:
    assert format_usd(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3600, "1h00m00s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_view_builds_rows_from_task_events() -> None:
    view = SessionView()
    view.load_tasks([])
    view.apply(event("task_queued", 1, {"name": "alpha", "attempt": 1, "priority": 0}, "t1"), 0)
    view.apply(event("task_started", 2, {"name": "alpha", "attempt": 1}, "t1", at=5), 0)
    usage = {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 7}
    view.apply(event("task_usage", 3, {**usage, "cost_usd": 0.5}, "t1"), 0)
    view.apply(event("task_usage", 4, {**usage, "cost_usd": None}, "t1"), 0)
    row = view.tasks["t1"]
    assert (row.state, row.name, row.attempts) == ("running", "alpha", 1)
    assert (row.input_tokens, row.output_tokens, row.cache_read_tokens) == (200, 40, 14)
    assert row.cost_usd == 0.5
    assert view.running() == [row]
    assert elapsed_text(row, T0 + timedelta(seconds=65)) == "1m00s"
    notice = view.apply(
        event("task_failed", 5, {"attempt": 1, "error": "boom", "duration_seconds": 2}, "t1", 9), 0
    )
    assert notice == "task t1 (alpha) failed: boom"
    assert (row.state, row.error, row.elapsed(T0 + timedelta(days=1))) == ("failed", "boom", 4.0)
    assert view.running() == []
    assert view.last_seq == 5


def test_view_session_ticks_only_while_fresh() -> None:
    view = SessionView()
    assert view.stale
    view.apply(event("session_update", 7, session()), now=100.0)
    assert not view.stale
    assert view.duration(now=110.0) == 71
    view.mark_stale()
    assert view.duration(now=120.0) == 61
    assert view.last_seq == 7


def test_view_detects_a_restarted_server() -> None:
    view = SessionView()
    view.load_tasks([{"task_id": "old", "name": "x", "state": "running"}])
    view.apply(event("session_update", 50, session()), 0)
    assert not view.needs_resync
    notice = view.apply(event("session_update", 3, session(session_id="s2")), 0)
    assert notice == "server restarted: new session"
    assert view.needs_resync
    assert view.tasks == {}
    assert view.last_seq == 3


def test_view_gap_asks_for_resync() -> None:
    view = SessionView()
    view.load_tasks([])
    gap = {"type": "gap", "task_id": "*", "first_seq": 4, "last_seq": 9, "reason": "overflow"}
    assert view.apply(gap, 0) == "missed events 4..9 (overflow); reloading tasks"
    assert view.needs_resync


def test_view_forgets_oldest_finished_rows() -> None:
    view = SessionView(max_finished=2)
    view.load_tasks([{"task_id": f"t{i}", "state": "completed"} for i in range(4)])
    assert list(view.tasks) == ["t2", "t3"]
    view.apply(event("task_cancelled", 9, {"reason": "op", "was_running": False}, "t9"), 0)
    assert list(view.tasks) == ["t3", "t9"]


def test_view_ignores_frames_it_does_not_know() -> None:
    view = SessionView()
    assert view.apply({"type": "pong"}, 0) is None
    assert view.apply({"type": "event", "seq": "x", "data": {}}, 0) is None
    assert view.last_seq is None


def test_session_events_are_described() -> None:
    view = SessionView()
    paused = event("executor_paused", 1, {"by": "operator", "reason": "lunch"})
    assert view.apply(paused, 0) == "executor paused by operator: lunch"
    budget = event("budget_changed", 2, {"budget_usd": 3, "by": "operator", "reason": ""})
    assert view.apply(budget, 0) == "budget set to $3.00 by operator"


def test_task_row_from_api_tolerates_missing_fields() -> None:
    row = TaskLine.from_api({"task_id": "a", "estimated_cost_usd": None, "started_at": "bad"})
    assert (row.task_id, row.state, row.cost_usd, row.started_at) == ("a", "queued", 0.0, None)


def test_render_status_has_session_and_table() -> None:
    rows = [{"task_id": "t1", "name": "n", "state": "failed", "attempts": 2, "error": "x"}]
    lines = render_status({"session": session(), "tasks": rows})
    assert lines[0].startswith("session 1m01s")
    assert lines[2].split()[:4] == ["TASK", "NAME", "STATE", "ATT"]
    assert lines[3].split()[:4] == ["t1", "n", "failed", "2"]
    assert lines[3].endswith("error: x")
    assert render_status({"session": session(), "tasks": []})[2] == "no tasks"


def test_describe_result() -> None:
    assert describe_result({"action": "pause", "status": "ok", "task_id": "*"}) == "pause: ok"
    assert describe_result({"action": "cancel", "status": "ok", "task_id": "t"}) == "cancel t: ok"


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for _ in range(5000):  # retrying forever never overflows
        assert backoff.next_delay() == 8.0
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_backoff_jitter_stays_within_bounds() -> None:
    backoff = Backoff(initial=1.0, maximum=4.0, jitter=0.5, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0.5 <= delay <= 4.0 for delay in delays)
    assert len(set(delays)) > 1


def test_http_url_follows_the_websocket_url() -> None:
    assert http_url("ws://h:1/ws", "/api/tasks") == "http://h:1/api/tasks"
    assert http_url("wss://h/x/ws", "/api/session") == "https://h/api/session"


def test_decode_frame_names_what_is_wrong() -> None:
    with pytest.raises(ClientError, match="not JSON"):
        decode_frame("{")
    with pytest.raises(ClientError, match="without a string 'type'"):
        decode_frame("[1]")
    assert decode_frame('{"type":"pong"}') == {"type": "pong"}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="runcast")
    register(root.add_subparsers(dest="command", required=True))
    return root


def test_commands_parse_with_defaults() -> None:
    args = parser().parse_args(["pause"])
    assert (args.url, args.action, args.task_id, args.token) == (DEFAULT_URL, "pause", "*", None)
    args = parser().parse_args(["cancel", "t7", "ws://h:1/ws", "--token", "k"])
    assert (args.task_id, args.url, args.token, args.action) == ("t7", "ws://h:1/ws", "k", "cancel")
    args = parser().parse_args(["budget", "set", "2.5"])
    assert (args.usd, args.action) == (2.5, "set_budget")
    assert parser().parse_args(["budget", "set", "none"]).usd is None
    assert parser().parse_args(["status", "--json"]).json is True
    assert callable(parser().parse_args(["watch"]).handler)


@pytest.mark.parametrize("amount", ["-1", "nan", "inf", "lots"])
def test_budget_rejects_bad_amounts(amount: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        parser().parse_args(["budget", "set", amount])
    assert exc_info.value.code == 2
    assert "USD must be" in capsys.readouterr().err


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "soon"])
def test_timeout_must_be_positive(timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["pause", "--timeout", timeout])
    assert "--timeout" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["watch", "status", "pause", "resume", "cancel", "budget"])
def test_every_command_has_help_with_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        parser().parse_args([command, "--help"])
    assert exc_info.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text
    assert "3  the server is unreachable" in text
    assert "4  the server refused the token" in text


def test_an_unpriced_task_s_cost_is_marked_as_the_summary_marks_it() -> None:
    view = SessionView()
    view.load_tasks([])
    view.apply(event("task_started", 1, {"name": "alpha", "attempt": 1}, "t1"), 0)
    unpriced = {"input_tokens": 100, "output_tokens": 20, "cost_source": "unpriced"}
    view.apply(event("task_usage", 2, {**unpriced, "cost_usd": None}, "t1"), 0)
    row = view.tasks["t1"]
    assert row.unpriced_tokens == 120
    assert cost_text(row) == "$0.00*"
    listed = TaskLine.from_api({"task_id": "t2", "estimated_cost_usd": 0.0, "unpriced_tokens": 5})
    assert format_task_table([listed])[1].endswith("$0.00*")
    priced = TaskLine.from_api({"task_id": "t3", "estimated_cost_usd": 0.0})
    assert format_task_table([priced])[1].endswith("$0.00")


def test_session_line_says_unpriced_tokens_are_not_in_the_cost() -> None:
    line = format_session_line({"estimated_cost_usd": 0.0, "unpriced_tokens": 1234}, 0)
    assert "$0.00* (* 1,234 tokens of unpriced models not included)" in line
    assert "*" not in format_session_line({"estimated_cost_usd": 0.0}, 0)


@pytest.mark.parametrize("url", ["notaurl", "ftp://h:1/ws", "ws://", "ws://h:99999/ws"])
@pytest.mark.parametrize("command", [["status"], ["watch"], ["pause"], ["budget", "set", "1"]])
def test_a_bad_url_is_a_bad_argument_exit_2(
    command: list[str], url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        parser().parse_args([*command, url])
    assert exc_info.value.code == 2
    assert "argument URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("ws://h:1/ws", "ws://h:1/ws"),
        ("wss://h/ws", "wss://h/ws"),
        ("http://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws"),
        ("https://runcast.example.com/", "wss://runcast.example.com/ws"),
        ("http://h:1/?token=abc", "ws://h:1/ws?token=abc"),
        ("127.0.0.1:8765", "ws://127.0.0.1:8765/ws"),
        ("[::1]:8765", "ws://[::1]:8765/ws"),
    ],
)
def test_the_url_a_server_prints_or_host_port_reaches_its_websocket(given: str, meant: str) -> None:
    assert parser().parse_args(["status", given]).url == meant


def test_the_server_s_token_variable_is_the_client_s_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = parser().parse_args(["status"])
    monkeypatch.delenv("RUNCAST_TOKEN", raising=False)
    monkeypatch.setenv("RUNCAST_AUTH_TOKEN", "server-token")
    assert _token(args) == "server-token"
    monkeypatch.setenv("RUNCAST_TOKEN", "client-token")
    assert _token(args) == "client-token"
    assert _token(parser().parse_args(["status", "--token", "flag"])) == "flag"
