"""One USD formatter for every command: small amounts never read as $0.00."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import pytest
import trio
from _store_support import record_session

from api.cli._store_commands import register
from api.cli._summary import format_summary
from api.clients._money import format_usd
from api.clients._view import format_session_line
from events import Event, SessionUpdate, TaskCompleted, TaskQueued, TaskStarted, TaskUsage


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (None, "none"),
        ("x", "?"),
        (True, "?"),
        (0, "$0.00"),
        (0.5, "$0.50"),
        (0.1 + 0.2, "$0.30"),
        (1.0, "$1.00"),
        (1234.5, "$1,234.50"),
        (12.345678, "$12.35"),
        (0.01234, "$0.0123"),
        (0.001, "$0.0010"),  # issue 17's budget, printed "$0.00" before
        (0.0001, "$0.00010"),
        (0.00001234, "$0.000012"),
        (1e-11, "$0.000000000010"),
        (1e-12, "$1.0e-12"),
        (5e-324, "$4.9e-324"),
        (math.inf, "$inf"),
    ],
)
def test_format_usd_reads_as_people_read_money(usd: object, text: str) -> None:
    assert format_usd(usd) == text


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0, "$0.0000"),
        (0.25, "$0.2500"),
        (1234.5, "$1,234.5000"),
        (0.001, "$0.0010"),
        (0.00001234, "$0.000012"),
    ],
)
def test_format_usd_for_a_table_column(usd: float, text: str) -> None:
    assert format_usd(usd, places=4) == text


def test_summary_shows_a_tenth_of_a_cent_budget() -> None:
    session = SessionUpdate(session_id="s", estimated_cost_usd=0.00002, budget_usd=0.001)
    text = format_summary([], session)
    assert "cost: $0.000020 of a $0.0010 budget" in text


def test_client_budget_line_shows_a_tenth_of_a_cent() -> None:
    line = format_session_line({"budget_usd": 0.001, "estimated_cost_usd": 0.0005}, 0)
    assert line.endswith("budget $0.00050 of $0.0010 (50%)")


async def _record_tiny_cost(path: Path) -> None:
    events: list[Event] = [
        TaskQueued(task_id="t"),
        TaskStarted(task_id="t"),
        TaskUsage(task_id="t", model="m", input_tokens=1, cost_usd=0.00003, cost_source="reported"),
        TaskCompleted(task_id="t", exit_code=0),
    ]
    await record_session(path, "s-tiny", events, end_status="finished")


def test_store_commands_show_fractions_of_a_cent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runcast.db"
    trio.run(_record_tiny_cost, path)
    parser = argparse.ArgumentParser(prog="runcast")
    register(parser.add_subparsers(dest="command", required=True))
    for argv in (["sessions"], ["show", "s-tiny"]):
        args = parser.parse_args([*argv, "--store", str(path)])
        assert args.handler(args) == 0
        out = capsys.readouterr().out
        assert "$0.000030" in out
        assert re.search(r"\$0\.0000(?!\d)", out) is None  # nothing spent reads as $0
