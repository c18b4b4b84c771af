"""The dashboard's Retry button on failed and cancelled rows, in headless Chromium
(issue 20, part 4)."""

from __future__ import annotations

import pytest
import trio
from _cdp import CdpError, Page
from _dashboard_support import open_dashboard
from _live_stack import VIEWER_TOKEN, eventually, live_stack
from test_dashboard import by_id, row_cell, wait_text

from executor import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

TIMEOUT = 60
RETRY = "document.querySelector('tr[data-task-id=\"{}\"] button.retry')"


async def fails_first(ctx: TaskContext, calls: list[int]) -> str:
    calls.append(1)
    if len(calls) == 1:
        ctx.output("ValueError: bad row 7", stream="stderr")
        raise ValueError("bad row 7")
    return "ok"


async def test_retry_a_failed_task_from_its_row(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(fails_first, [], task_id="t1")
            await eventually(lambda: stack.broadcaster.snapshot().tasks_failed == 1)
            await open_dashboard(page, stack)
            await wait_text(page, row_cell("t1", "state"), "failed")
            await page.wait_for(f"!{RETRY.format('t1')}.disabled")
            assert await page.text('tr[data-task-id="t1"] button.retry') == "Retry"
            await page.click('tr[data-task-id="t1"] button.retry')
            await wait_text(page, row_cell("t1", "state"), "completed")
            await wait_text(page, row_cell("t1", "attempts"), "2")
            await wait_text(page, "#command-result", "retry: queued")
            await wait_text(page, "#tasks-failed", "0")
            # Not a click on the row (the panel stays shut); a completed row offers nothing.
            assert await page.evaluate(f"{by_id('task-detail')}.hidden") is True
            assert await page.evaluate(RETRY.format("t1")) is None
            assert await page.evaluate("document.querySelector('tr[data-tail-of=\"t1\"]')") is None
    assert stack.executor.task("t1").attempts == 2


async def forever(ctx: TaskContext) -> None:
    await trio.sleep_forever()


async def test_a_cancelled_row_offers_retry_and_a_viewer_sees_it_disabled(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(fails_first, [], task_id="t1")
            stack.executor.submit(forever, task_id="t2")
            await eventually(lambda: stack.executor.task("t1").state == "failed")
            stack.executor.cancel("t2")
            await eventually(lambda: stack.executor.task("t2").state == "cancelled")
            await open_dashboard(page, stack, VIEWER_TOKEN)
            await page.wait_for(f"!{by_id('read-only')}.hidden")
            await wait_text(page, row_cell("t2", "state"), "cancelled")
            for task_id in ("t1", "t2"):
                await page.wait_for(f"{RETRY.format(task_id)} !== null")
                assert await page.evaluate(f"{RETRY.format(task_id)}.disabled") is True
            # A viewer's page cannot press it; the tasks stay as they were.
            with pytest.raises(CdpError, match="no enabled element"):
                await page.click('tr[data-task-id="t2"] button.retry')
            assert stack.executor.task("t2").state == "cancelled"
