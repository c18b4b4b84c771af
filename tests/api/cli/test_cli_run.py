"""The ``runcast`` command line: parsing, help, refusals, settings and the summary table."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from _api_support import T0

from api import main
from api.cli._logging import configure_logging
from api.cli._main import build_parser
from api.cli._run import RunOptions, resolve_settings
from api.cli._summary import format_summary
from api.server._config import ServerConfig
from events import SessionUpdate
from executor import TaskInfo, load_job_file


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    top = _help([], capsys)
    # argparse has no public way to list subcommands.
    (subparsers,) = (a for a in build_parser()._actions if a.dest == "command")
    commands = set(subparsers.choices or ())
    assert {"run", "demo"} <= commands
    for name in commands:
        assert name in top
        assert f"usage: runcast {name}" in _help([name], capsys)


def test_run_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["run"], capsys)
    for flag in (
        "--concurrency",
        "--budget-usd",
        "--prices",
        "--interval",
        "--host",
        "--port",
        "--store",
        "--auth-token",
        "--viewer-token",
        "--allow-origin",
        "--start-paused",
        "--keep-serving",
        "--log-json",
    ):
        assert flag in text


def test_demo_help_lists_host_port_interval(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["demo"], capsys)
    assert all(flag in text for flag in ("--host", "--port", "--interval"))


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["run", "j.toml", "--concurrency", "0"], "must be >= 1"),
        (["run", "j.toml", "--concurrency", "two"], "expected a whole number"),
        (["run", "j.toml", "--budget-usd", "-1"], ">= 0"),
        (["run", "j.toml", "--budget-usd", "nan"], "finite"),
        (["run", "j.toml", "--interval", "0"], "> 0"),
        (["run", "j.toml", "--port", "99999"], "0..65535"),
        (["demo", "--log-level", "loud"], "invalid choice"),
        (["run"], "JOBFILE"),
    ],
)
def test_bad_flags_are_named(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_store_and_flags_are_carried(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["run", str(tmp_path / "j.toml"), "--store", ":memory:", "--start-paused", "--port", "0"]
    )
    assert args.store == ":memory:"
    assert args.start_paused is True
    assert args.keep_serving is False


def test_logging_flags_work_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--log-json", "demo"]).log_json is True
    assert parser.parse_args(["demo", "--log-json"]).log_json is True
    assert not parser.parse_args(["demo"]).log_json


def test_missing_job_file_fails_before_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["run", str(missing), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "nope.toml" in err
    assert "cannot read job file" in err


def test_public_bind_without_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNCAST_AUTH_TOKEN", raising=False)
    assert main(["demo", "--host", "0.0.0.0"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


def test_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.cli._main import server_config

    monkeypatch.setenv("RUNCAST_AUTH_TOKEN", "from-env")
    args = build_parser().parse_args(["demo", "--host", "0.0.0.0"])
    assert server_config(args).auth_tokens == ("from-env",)
    args = build_parser().parse_args(["demo", "--auth-token", "flag", "--auth-token", "two"])
    assert server_config(args).auth_tokens == ("flag", "two")


def test_flags_override_the_job_file(tmp_path: Path) -> None:
    job_path = tmp_path / "job.toml"
    job_path.write_text(
        'concurrency = 2\nbudget_usd = 1.5\n[[task]]\ncommand = ["true"]\n', encoding="utf-8"
    )
    job = load_job_file(job_path)
    plain = resolve_settings(RunOptions(job_file=job_path, server=ServerConfig()), job)
    assert (plain.concurrency, plain.budget_usd) == (2, 1.5)
    flagged = resolve_settings(
        RunOptions(job_file=job_path, server=ServerConfig(), concurrency=7, budget_usd=0.0), job
    )
    assert (flagged.concurrency, flagged.budget_usd) == (7, 0.0)
    bare = tmp_path / "bare.toml"
    bare.write_text('[[task]]\ncommand = ["true"]\n', encoding="utf-8")
    default = resolve_settings(
        RunOptions(job_file=bare, server=ServerConfig()), load_job_file(bare)
    )
    assert (default.concurrency, default.budget_usd) == (4, None)


def _task(task_id: str, state: str, **extra: object) -> TaskInfo:
    values: dict[str, object] = {
        "task_id": task_id,
        "name": task_id,
        "state": state,
        "attempts": 1,
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=2.5),
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "estimated_cost_usd": 0.0123,
        "error": None,
        "exit_code": 0,
    }
    values.update(extra)
    return TaskInfo(**values)  # type: ignore[arg-type]


def test_summary_table() -> None:
    tasks = [
        _task("alpha", "completed"),
        _task("beta", "failed", attempts=2, error="exit status 3\nmore", exit_code=3),
        _task("gamma", "cancelled", started_at=None, ended_at=None, unpriced_tokens=10),
    ]
    session = SessionUpdate(
        duration_seconds=7,
        input_tokens=3600,
        output_tokens=900,
        total_tokens=4500,
        estimated_cost_usd=0.0369,
        unpriced_tokens=10,
        budget_usd=1.0,
        session_id="s1",
    )
    text = format_summary(tasks, session)
    lines = text.splitlines()
    assert lines[0].split() == [
        "TASK", "STATE", "TRIES", "TIME", "IN", "OUT", "CACHE", "R", "CACHE", "W", "COST", "ERROR"
    ]  # fmt: skip
    assert lines[1].split() == [
        "alpha",
        "completed",
        "1",
        "2.5s",
        "1,200",
        "300",
        "0",
        "0",
        "$0.0123",
    ]
    assert "exit status 3 more" in lines[2]
    assert lines[3].split()[3] == "-"
    assert "$0.0123*" in lines[3]
    assert "3 tasks: 1 completed, 1 failed, 1 cancelled" in text
    assert "tokens: 4,500 (in 3,600, out 900, cache read 0, cache write 0)" in text
    assert "cost: $0.0369 (* 10 tokens of unpriced models not included) of a $1.00 budget" in text
    assert "duration: 7s" in text


def test_console_and_json_logs() -> None:
    console = io.StringIO()
    configure_logging(json=False, stream=console)
    structlog.get_logger("t").info("hello", peer="p")
    assert "hello" in console.getvalue()
    assert "peer=p" in console.getvalue()

    lines = io.StringIO()
    configure_logging(json=True, level="warning", stream=lines)
    structlog.get_logger("t").info("dropped")
    structlog.get_logger("t").warning("kept", n=1)
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [(r["event"], r["level"], r["n"]) for r in records] == [("kept", "warning", 1)]
    assert records[0]["timestamp"].endswith("Z")
