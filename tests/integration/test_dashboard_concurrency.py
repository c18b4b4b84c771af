"""The dashboard's concurrency control in headless Chromium (issue 20, part 4)."""

from __future__ import annotations

import pytest
import trio
from _cdp import Page
from _dashboard_support import open_dashboard
from _live_stack import VIEWER_TOKEN, eventually, live_stack
from test_dashboard import by_id, wait_text

from executor import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

TIMEOUT = 60


async def forever(ctx: TaskContext) -> None:
    await trio.sleep_forever()


async def _enter(page: Page, text: str) -> None:
    await page.evaluate(f"{by_id('concurrency-input')}.value = {text!r}")
    await page.click("#btn-concurrency-set")


async def test_raise_the_concurrency_from_the_page(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.set_concurrency(1, by="startup")
            for index in range(3):
                stack.executor.submit(forever, task_id=f"t{index}")
            await open_dashboard(page, stack)
            await page.wait_for(f"!{by_id('btn-concurrency-set')}.disabled")
            # Bad input: said, nothing sent, nothing changed.
            for bad in ("0", "two", "10001"):
                await _enter(page, bad)
                await wait_text(
                    page,
                    "#command-result",
                    f'concurrency: enter a whole number from 1 to 10000, not "{bad}"',
                )
            assert stack.executor.concurrency == 1
            await _enter(page, "3")
            await wait_text(page, "#command-result", "set_concurrency: concurrency_set")
            await eventually(lambda: stack.executor.running_count == 3)
            await page.wait_for(f"{by_id('concurrency-input')}.placeholder === '3'")


async def test_a_viewer_cannot_change_it(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            await open_dashboard(page, stack, VIEWER_TOKEN)
            await page.wait_for(f"!{by_id('read-only')}.hidden")
            for control in ("concurrency-input", "btn-concurrency-set"):
                assert await page.evaluate(f"{by_id(control)}.disabled") is True, control
