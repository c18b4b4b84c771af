"""The dashboard's concurrency control in headless Chromium (issue 20, part 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog
import trio
from _cdp import CHROMIUM, Page, open_page
from _live_stack import OPERATOR_TOKEN, VIEWER_TOKEN, LiveStack, eventually, live_stack
from test_dashboard import by_id, wait_text

from executor import TaskContext

pytestmark = pytest.mark.integration

TIMEOUT = 60


@pytest.fixture(autouse=True)
def quiet_server_logs() -> Iterator[None]:
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed; scripts/ensure-system-deps installs it")
    async with open_page(tmp_path / "chromium") as opened:
        yield opened


async def _open(page: Page, stack: LiveStack, token: str = OPERATOR_TOKEN) -> None:
    await page.navigate(f"{stack.server.url}?token={token}")
    await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'connected'")
    await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")


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
            await _open(page, stack)
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
            await _open(page, stack, VIEWER_TOKEN)
            await page.wait_for(f"!{by_id('read-only')}.hidden")
            for control in ("concurrency-input", "btn-concurrency-set"):
                assert await page.evaluate(f"{by_id(control)}.disabled") is True, control
