"""``runcast retry TASK_ID [URL]`` against a live runcast server on loopback."""

from __future__ import annotations

import pytest
import trio
from _client_support import run_handler
from _live_stack import OPERATOR_TOKEN, VIEWER_TOKEN, eventually, live_stack

from executor import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]


async def fails_then_runs(ctx: TaskContext, calls: list[int]) -> None:
    """Fails its first attempt; later ones run until cancelled."""
    calls.append(1)
    if len(calls) == 1:
        raise RuntimeError("first attempt fails")
    await trio.sleep_forever()


async def test_retry_a_failed_task_and_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(30):
        async with live_stack(tokens=True) as stack:
            stack.start_burner("t1")
            stack.executor.submit(fails_then_runs, [], task_id="t2")
            url, token = stack.ws_url, ["--token", OPERATOR_TOKEN]
            await eventually(lambda: stack.executor.task("t1").state == "running")
            await eventually(lambda: stack.executor.task("t2").state == "failed")

            code, text = await run_handler(["retry", "t1", url, *token], capsys)
            assert code == 1
            assert text.strip() == (
                "runcast retry: server error: task 't1' is running: only a failed, "
                "timed-out or cancelled task can be retried"
            )

            code, text = await run_handler(["retry", "t2", url, "--token", VIEWER_TOKEN], capsys)
            assert code == 1
            assert "forbidden" in text
            assert stack.executor.task("t2").state == "failed"

            code, text = await run_handler(["retry", "t2", url, *token], capsys)
            assert (code, text.strip()) == (0, "retry t2: queued")
            await eventually(lambda: stack.executor.task("t2").state == "running")
            assert stack.executor.task("t2").attempts == 2
            stack.executor.cancel("t2")

            code, text = await run_handler(["retry", "nope", url, *token], capsys)
            assert code == 1
            assert "no task with id 'nope'" in text
