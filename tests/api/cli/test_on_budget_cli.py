"""``run --on-budget`` and ``pause --suspend``: parsed, resolved, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from _api_support import served_with_executor

from api.cli._client_commands import fetch_status
from api.cli._main import ON_BUDGET, build_parser
from api.cli._run import RunOptions, resolve_settings
from api.server._config import ServerConfig
from executor import ON_BUDGET as EXECUTOR_ON_BUDGET
from executor import load_job_file


def test_the_cli_offers_what_the_executor_accepts() -> None:
    assert ON_BUDGET == EXECUTOR_ON_BUDGET


def test_an_unknown_on_budget_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "job.toml", "--on-budget", "stop"])
    assert exited.value.code == 2
    assert "--on-budget: invalid choice: 'stop'" in capsys.readouterr().err


def test_the_flag_overrides_the_job_file_which_overrides_the_default(tmp_path: Path) -> None:
    job_path = tmp_path / "job.toml"
    job_path.write_text('on_budget = "cancel"\n[[task]]\ncommand = ["true"]\n', encoding="utf-8")
    bare = tmp_path / "bare.toml"
    bare.write_text('[[task]]\ncommand = ["true"]\n', encoding="utf-8")
    server = ServerConfig()
    job = load_job_file(job_path)
    assert resolve_settings(RunOptions(job_file=job_path, server=server), job).on_budget == "cancel"
    args = build_parser().parse_args(["run", str(job_path), "--on-budget", "suspend"])
    flagged = RunOptions(job_file=job_path, server=server, on_budget=args.on_budget)
    assert resolve_settings(flagged, job).on_budget == "suspend"
    plain = RunOptions(job_file=bare, server=server)
    assert resolve_settings(plain, load_job_file(bare)).on_budget == "pause"


def test_pause_suspend_sends_the_flag_in_data() -> None:
    args = build_parser().parse_args(["pause", "--suspend"])
    assert (args.action, args.data) == ("pause", {"suspend": True})
    assert build_parser().parse_args(["pause"]).data is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["resume", "--suspend"])


async def test_status_json_shows_who_paused_and_why() -> None:
    with trio.fail_after(10):
        async with served_with_executor(budget_usd=0.0) as stack:
            url = f"ws://127.0.0.1:{stack.server.port}/ws"
            status = await fetch_status(url, None)
    session = status["session"]
    assert session["is_paused"] is True
    assert session["paused_by"] == "budget"
    assert session["pause_reason"] == "budget exhausted: spent $0.0000 of $0.0000"
