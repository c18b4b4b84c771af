"""The dashboard's task table in headless Chromium (issue 22): rows kept by key, so
a selection survives live updates; sort by a column, filter by state, search by id
and page through 10,000 tasks."""

from __future__ import annotations

import json

import pytest
import trio
from _cdp import Page
from _live_stack import OPERATOR_TOKEN, LiveStack, eventually, live_stack
from test_dashboard import by_id, row_cell, wait_text

from executor import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

TIMEOUT = 90
#: The page writes its row ranges with an en dash, as in "1 DASH 10 of 10".
DASH = "\N{EN DASH}"
ERROR = "ValueError: row 7 of /data/input-2026-12-06.csv has 3 columns, expected 4"


async def _open(page: Page, stack: LiveStack) -> None:
    await page.navigate(f"{stack.server.url}?token={OPERATOR_TOKEN}")
    await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'connected'")
    await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")


async def _fails(ctx: TaskContext) -> None:
    raise ValueError(ERROR.removeprefix("ValueError: "))


def _first_ids(count: int) -> str:
    return (
        "Array.from(document.querySelectorAll('#task-rows tr[data-task-id]'))"
        f".slice(0, {count}).map(tr => tr.dataset.taskId)"
    )


SELECT_ERROR = """(() => {
  const td = document.querySelector('tr[data-task-id="bad"] td.error');
  const range = document.createRange();
  range.selectNodeContents(td);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  window.__row = td.closest('tr');
  return selection.toString();
})()"""


async def test_a_selection_in_an_error_survives_live_updates(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(_fails, task_id="bad", name="parse")
            await eventually(lambda: stack.broadcaster.snapshot().tasks_failed == 1)
            big = stack.start_burner("big", "burns a lot")
            small = stack.start_burner("small", "burns a little")
            await big.send(1000)
            await small.send(10)
            await _open(page, stack)
            await wait_text(page, row_cell("bad", "error"), ERROR)
            await wait_text(page, row_cell("small", "in"), "10")
            assert await page.evaluate(SELECT_ERROR) == ERROR
            # 3 s of updates: usage on both running rows, session updates, ticking clocks.
            for _ in range(15):
                await big.send(100)
                await small.send(1)
                await trio.sleep(0.2)
            await wait_text(page, row_cell("big", "in"), f"{1000 + 15 * 100:,}")
            assert await page.evaluate("window.getSelection().toString()") == ERROR
            # The very row element was updated in place, not replaced.
            same = await page.evaluate(
                "window.__row.isConnected && window.__row === "
                "document.querySelector('tr[data-task-id=\"bad\"]')"
            )
            assert same is True
            # A drag that selected text does not open the task panel.
            await page.evaluate("window.__row.querySelector('td.error').click()")
            assert await page.evaluate(f"{by_id('task-detail')}.hidden") is True

            # Sort by a numeric column, both ways (the header says which).
            await page.click('#tasks th[data-sort="in"]')
            assert await page.evaluate(_first_ids(3)) == ["bad", "small", "big"]
            await page.click('#tasks th[data-sort="in"]')
            assert await page.evaluate(_first_ids(3)) == ["big", "small", "bad"]
            sorted_as = "document.querySelector('#tasks th[data-sort=\"in\"]').ariaSort"
            assert await page.evaluate(sorted_as) == "descending"
            # Filter by state.
            await page.evaluate(
                f"{by_id('task-filter')}.value = 'failed';"
                f"{by_id('task-filter')}.dispatchEvent(new Event('change'))"
            )
            assert await page.evaluate(_first_ids(10)) == ["bad"]
            assert await page.text("#page-info") == f"1{DASH}1 of 1 (3 in all)"


async def _queued(ctx: TaskContext) -> None:
    await trio.sleep_forever()


async def _search(page: Page, text: str) -> None:
    await page.evaluate(
        f"{by_id('task-search')}.value = {json.dumps(text)};"
        f"{by_id('task-search')}.dispatchEvent(new Event('input'))"
    )


async def test_ten_thousand_tasks_sort_search_and_pages(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.pause()
            for index in range(10_000):
                stack.executor.submit(_queued, task_id=f"q{index:05d}", name=f"job {index}")
            await _open(page, stack)
            await wait_text(page, "#page-info", f"1{DASH}2,000 of 10,000")
            assert await page.evaluate("document.querySelectorAll('#task-rows tr').length") == 2000

            # Sorting 10,000 rows and redrawing the page of 2,000 is one click's work.
            took_ms = await page.evaluate(
                "(() => { const t = performance.now();"
                " document.querySelector('#tasks th[data-sort=\"task\"]').click();"
                " document.querySelector('#tasks th[data-sort=\"task\"]').click();"
                " return (performance.now() - t) / 2; })()"
            )
            print(f"sort 10,000 tasks and redraw 2,000 rows: {took_ms:.1f} ms")
            assert took_ms < 2000
            assert await page.evaluate(_first_ids(2)) == ["q09999", "q09998"]

            await page.click("#page-next")
            await wait_text(page, "#page-info", f"2,001{DASH}4,000 of 10,000")
            assert await page.evaluate(_first_ids(1)) == ["q07999"]
            assert await page.evaluate(f"{by_id('page-prev')}.disabled") is False

            await _search(page, "Q0999")
            await wait_text(page, "#page-info", f"1{DASH}10 of 10 (10,000 in all)")
            assert await page.evaluate(_first_ids(20)) == [f"q0999{n}" for n in range(9, -1, -1)]

            await _search(page, "")
            await page.evaluate(
                f"{by_id('task-filter')}.value = 'running';"
                f"{by_id('task-filter')}.dispatchEvent(new Event('change'))"
            )
            await wait_text(page, "#page-info", "none shown (10,000 in all)")
            assert await page.evaluate("document.querySelectorAll('#task-rows tr').length") == 0
