"""``runcast sessions`` / ``show`` / ``export`` against a recorded store."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest
import trio
from _store_support import record_session

from api.cli._store_commands import register
from api.store._store import SessionStore
from events import Event, TaskCompleted, TaskQueued, TaskStarted, TaskUsage


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runcast")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _call(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    result: int = args.handler(args)
    return result


@pytest.fixture
def recorded_store(tmp_path: Path) -> Path:
    path = tmp_path / "runcast.db"
    trio.run(_record_two_tasks, path)
    return path


async def _record_two_tasks(path: Path) -> None:
    events: list[Event] = []
    for task, model, cost in (("a", "gpt-4o", 0.25), ("b", "mystery", None)):
        events.append(TaskQueued(task_id=task, name=f"{task} name"))
        events.append(TaskStarted(task_id=task))
        events.append(
            TaskUsage(
                task_id=task,
                model=model,
                input_tokens=100,
                output_tokens=10,
                cache_read_tokens=5,
                cost_usd=cost,
                cost_source="reported" if cost is not None else "unpriced",
            )
        )
        events.append(TaskCompleted(task_id=task, exit_code=0))
    await record_session(path, "s-0001", events, job_key="k", end_status="finished")


def test_sessions_lists_totals(recorded_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _call(["sessions", "--store", str(recorded_store)]) == 0
    out = capsys.readouterr().out
    assert "s-0001" in out
    assert "finished" in out
    assert "230" in out  # 2 x (100 + 10 + 5) tokens
    assert "$0.2500" in out
    assert _call(["sessions", "--store", str(recorded_store), "--json"]) == 0
    (session,) = json.loads(capsys.readouterr().out)
    assert session["usage"]["total_tokens"] == 230
    assert session["usage"]["unpriced_tokens"] == 115


def test_show_breaks_down_by_task_and_model(
    recorded_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call(["show", "s-00", "--store", str(recorded_store), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [t["task_id"] for t in document["tasks"]] == ["a", "b"]
    assert document["tasks"][0]["usage"]["cost_usd"] == 0.25
    assert document["models"]["mystery"]["unpriced_tokens"] == 115
    assert _call(["show", "s-0001", "--store", str(recorded_store)]) == 0
    text = capsys.readouterr().out
    assert "gpt-4o" in text
    assert "completed" in text


def test_export_csv_and_jsonl(recorded_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _call(["export", "s-0001", "--store", str(recorded_store)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["task_id"], r["model"], r["cost_source"]) for r in rows] == [
        ("a", "gpt-4o", "reported"),
        ("b", "mystery", "unpriced"),
    ]
    assert _call(["export", "s-0001", "--store", str(recorded_store), "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["input_tokens"] == 100
    assert lines[1]["cost_usd"] is None


def test_errors_are_one_line_and_non_zero(
    recorded_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call(["show", "nope", "--store", str(recorded_store)]) == 1
    assert "no session 'nope'" in capsys.readouterr().err
    missing = tmp_path / "missing.db"
    assert _call(["sessions", "--store", str(missing)]) == 1
    assert f"no store at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_show_and_export_set_interrupted_attempts_apart(
    recorded_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SessionStore.open(recorded_store)
    store.mark_interrupted("s-0001", [("a", 1)])  # as a resume does after a crash
    store.close()
    assert _call(["show", "s-0001", "--store", str(recorded_store)]) == 0
    text = capsys.readouterr().out
    assert "of which interrupted attempts: 115 tokens, $0.25 (1 usage record;" in text
    assert "INTERRUPTED TOKENS" in text
    assert _call(["show", "s-0001", "--store", str(recorded_store), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["session"]["usage"]["total_tokens"] == 230  # still counted, once
    assert document["session"]["interrupted"]["total_tokens"] == 115
    assert [t["interrupted"]["total_tokens"] for t in document["tasks"]] == [115, 0]
    assert [t["state"] for t in document["tasks"]] == ["interrupted", "completed"]
    assert _call(["export", "s-0001", "--store", str(recorded_store)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["task_id"], r["attempt"], r["interrupted"]) for r in rows] == [
        ("a", "1", "1"),
        ("b", "1", "0"),
    ]


def test_show_without_interrupted_attempts_says_nothing_of_them(
    recorded_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _call(["show", "s-0001", "--store", str(recorded_store)]) == 0
    assert "interrupted attempts" not in capsys.readouterr().out
