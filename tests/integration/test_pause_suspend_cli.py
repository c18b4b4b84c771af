"""``runcast pause --suspend`` against a served executor running a real command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from _client_support import run_handler
from _live_stack import OPERATOR_TOKEN, eventually, live_stack

from executor import CommandSpec

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

SLEEPER = """
import os, sys, time
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def test_pause_suspend_stops_the_command_and_resume_continues_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = trio.Path(tmp_path / "pid")
    with trio.fail_after(30):
        async with live_stack(tokens=True) as stack:
            command = [sys.executable, "-c", SLEEPER, str(pid_file)]
            stack.executor.submit_command(CommandSpec(id="sleeper", command=command))
            while not await pid_file.exists():  # noqa: ASYNC110 - a real child writes it
                await trio.sleep(0.02)
            pid = int(await pid_file.read_text())
            url, token = stack.ws_url, ["--token", OPERATOR_TOKEN]

            code, text = await run_handler(["pause", url, "--suspend", *token], capsys)
            assert (code, text.strip()) == (
                0,
                "pause: paused (running commands suspended until resume)",
            )
            await eventually(lambda: state(pid) == "T")
            code, text = await run_handler(["status", url, "--json", *token], capsys)
            session = json.loads(text)["session"]
            assert (session["is_paused"], session["paused_by"]) == (True, "operator")
            assert session["pause_reason"].startswith("websocket command from ")

            code, text = await run_handler(["resume", url, *token], capsys)
            assert (code, text.strip()) == (0, "resume: resumed")
            await eventually(lambda: state(pid) != "T")
            code, text = await run_handler(["status", url, "--json", *token], capsys)
            session = json.loads(text)["session"]
            assert (session["is_paused"], session["paused_by"], session["pause_reason"]) == (
                False,
                None,
                None,
            )
