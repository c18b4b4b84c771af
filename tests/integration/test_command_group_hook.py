"""``on_process_group`` with real commands: the group a command runs in, and a hook that fails."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
from _process_support import alive, group_exists

from events import Publisher
from executor import CommandSpec, TaskFailedError, open_executor

pytestmark = pytest.mark.integration

PY = sys.executable


async def test_the_hook_hears_the_commands_own_group_and_its_end_once_it_is_gone(
    tmp_path: Path,
) -> None:
    heard: list[tuple[str, int, bool, bool]] = []

    def hook(task_id: str, pgid: int, started: bool) -> None:
        heard.append((task_id, pgid, started, group_exists(pgid)))

    code = "import os; print(os.getpid(), os.getpgid(0))"
    spec = CommandSpec(id="pgid", command=[PY, "-c", code])
    publisher = Publisher()
    with trio.fail_after(20):
        async with open_executor(publisher, on_process_group=hook) as executor:
            executor.submit_command(spec)
    [(task, pgid, started, existed), (task_again, pgid_again, ended, exists)] = heard
    assert (task, started, existed) == ("pgid", True, True)
    assert (task_again, pgid_again, ended, exists) == ("pgid", pgid, False, False)
    assert executor.task("pgid").state == "completed"


async def test_a_hook_that_raises_fails_the_task_and_leaves_no_process(tmp_path: Path) -> None:
    pids: list[int] = []

    def hook(task_id: str, pgid: int, started: bool) -> None:
        if started:
            pids.append(pgid)
            raise RuntimeError("the ledger is broken")

    spec = CommandSpec(id="sleeper", command=[PY, "-c", "import time; time.sleep(60)"])
    publisher = Publisher()
    with trio.fail_after(20):
        async with open_executor(publisher, on_process_group=hook, kill_grace=1.0) as executor:
            handle = executor.submit_command(spec)
            with pytest.raises(TaskFailedError, match="the ledger is broken"):
                await handle.wait()
    [pid] = pids
    assert not alive(pid)
