"""The dashboard's task panel and operator controls in headless Chromium (issue 20,
parts 1 and 4): a failed task's output, live output and "load earlier", Cancel on a
row, the budget editor, and a viewer's read-only page."""

from __future__ import annotations

import pytest
import trio
from _cdp import Page
from _dashboard_support import open_dashboard
from _live_stack import VIEWER_TOKEN, eventually, live_stack
from test_dashboard import by_id, row_cell, wait_text

from executor import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

TIMEOUT = 60


def _lines(element_id: str) -> str:
    return f"Array.from({by_id(element_id)}.querySelectorAll('.line')).map(e => e.textContent)"


async def _fails_with_a_traceback(ctx: TaskContext) -> None:
    ctx.output("reading input\nparsing", stream="stdout")
    ctx.output("Traceback (most recent call last):\nValueError: bad row 7", stream="stderr")
    raise ValueError("bad row 7")


async def test_a_failed_tasks_output_and_last_stderr_lines(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(_fails_with_a_traceback, task_id="t1", name="parse")
            await eventually(lambda: stack.broadcaster.snapshot().tasks_failed == 1)
            await open_dashboard(page, stack)
            await wait_text(page, row_cell("t1", "state"), "failed")
            # In the table, under the row: its last stderr lines.
            await wait_text(
                page,
                'tr[data-tail-of="t1"] pre',
                "Traceback (most recent call last):\nValueError: bad row 7",
            )
            await page.click(row_cell("t1", "state"))
            await page.wait_for(f"!{by_id('task-detail')}.hidden")
            await page.wait_for(f"{_lines('detail-output')}.length === 4")
            assert await page.evaluate(_lines("detail-output")) == [
                "reading input",
                "parsing",
                "Traceback (most recent call last):",
                "ValueError: bad row 7",
            ]
            await page.wait_for(f"!{by_id('detail-stderr-box')}.hidden")
            assert await page.evaluate(_lines("detail-stderr")) == [
                "Traceback (most recent call last):",
                "ValueError: bad row 7",
            ]
            stderr_class = await page.evaluate(
                f"{by_id('detail-output')}.querySelectorAll('.line')[3].dataset.stream"
            )
            assert stderr_class == "stderr"
            assert await page.text("#detail-name") == "parse"
            assert "bad row 7" in await page.text('dd[data-fact="error"]')
            assert await page.text('dd[data-fact="state"]') == "failed"
            assert await page.text('dd[data-fact="attempts"]') == "1"
            assert await page.evaluate(f"{by_id('btn-detail-cancel')}.disabled") is True


async def test_live_output_and_load_earlier(page: Page) -> None:
    go_on = trio.Event()

    async def chatty(ctx: TaskContext) -> None:
        ctx.output("\n".join(f"line {n}" for n in range(1, 251)))
        await go_on.wait()
        ctx.output("live one", stream="stderr")
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(chatty, task_id="t1")
            await open_dashboard(page, stack)
            await wait_text(page, row_cell("t1", "state"), "running")
            await page.click(row_cell("t1", "name"))
            # The newest 200 lines come first; the rest on asking.
            await page.wait_for(f"{_lines('detail-output')}.length === 200")
            assert (await page.evaluate(_lines("detail-output")))[0] == "line 51"
            await page.wait_for(f"!{by_id('btn-load-earlier')}.hidden")
            await page.click("#btn-load-earlier")
            await page.wait_for(f"{_lines('detail-output')}.length === 250")
            shown = await page.evaluate(_lines("detail-output"))
            assert shown == [f"line {n}" for n in range(1, 251)]
            await page.wait_for(f"{by_id('btn-load-earlier')}.hidden")
            assert await page.evaluate(f"{by_id('detail-not-kept')}.hidden") is True
            # Live: a new line reaches the open panel without a reload.
            go_on.set()
            await page.wait_for(f"{_lines('detail-output')}.length === 251")
            assert (await page.evaluate(_lines("detail-output")))[-1] == "live one"


async def test_cancel_a_running_task_from_its_row(page: Page) -> None:
    async def forever(ctx: TaskContext) -> None:
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(forever, task_id="t1")
            await open_dashboard(page, stack)
            await wait_text(page, row_cell("t1", "state"), "running")
            await page.wait_for(
                "!document.querySelector('tr[data-task-id=\"t1\"] button.cancel').disabled"
            )
            await page.click('tr[data-task-id="t1"] button.cancel')
            await wait_text(page, row_cell("t1", "state"), "cancelled")
            await wait_text(page, "#command-result", "cancel: cancelled")
            # The panel did not open: the button is not a click on the row.
            assert await page.evaluate(f"{by_id('task-detail')}.hidden") is True
            assert (
                await page.evaluate(
                    "document.querySelector('tr[data-task-id=\"t1\"] button.cancel')"
                )
                is None
            )
    assert stack.broadcaster.snapshot().tasks_cancelled == 1


async def test_budget_editor_sets_raises_and_removes(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True, budget_usd=1.0) as stack:
            await open_dashboard(page, stack)
            await page.wait_for(f"!{by_id('btn-budget-set')}.disabled")

            async def enter(text: str) -> None:
                await page.evaluate(f"{by_id('budget-input')}.value = {text!r}")
                await page.click("#btn-budget-set")

            await enter("2.50")
            await wait_text(page, "#budget-text", "$0.00 of $2.50 (0%) · $2.50 left")
            assert stack.executor.budget_usd == 2.5
            await enter("$10")
            await wait_text(page, "#budget-text", "$0.00 of $10.00 (0%) · $10.00 left")
            assert stack.executor.budget_usd == 10.0
            # Bad input: said, nothing sent, nothing changed.
            await enter("ten")
            await wait_text(
                page, "#command-result", 'budget: enter an amount in USD (a number >= 0), not "ten"'
            )
            await enter("-1")
            await wait_text(
                page, "#command-result", 'budget: enter an amount in USD (a number >= 0), not "-1"'
            )
            assert stack.executor.budget_usd == 10.0
            await page.click("#btn-budget-remove")
            await wait_text(page, "#budget-text", "no budget")
            assert stack.executor.budget_usd is None


async def test_a_viewer_sees_a_read_only_page(page: Page) -> None:
    async def forever(ctx: TaskContext) -> None:
        ctx.output("visible to viewers")
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(forever, task_id="t1")
            await open_dashboard(page, stack, VIEWER_TOKEN)
            await page.wait_for(f"!{by_id('read-only')}.hidden")
            assert "read-only" in await page.text("#read-only")
            await wait_text(page, row_cell("t1", "state"), "running")
            for control in ("btn-pause", "btn-resume", "budget-input", "btn-budget-set"):
                assert await page.evaluate(f"{by_id(control)}.disabled") is True, control
            assert await page.evaluate(
                "document.querySelector('tr[data-task-id=\"t1\"] button.cancel').disabled"
            )
            # Reading stays open to a viewer: the task's output.
            await page.click(row_cell("t1", "state"))
            await page.wait_for(f"{_lines('detail-output')}.length === 1")
            assert await page.evaluate(_lines("detail-output")) == ["visible to viewers"]
            assert await page.evaluate(f"{by_id('btn-detail-cancel')}.disabled") is True
            assert not stack.executor.is_paused


async def test_an_operator_page_is_not_read_only(page: Page) -> None:
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            await open_dashboard(page, stack)
            await page.wait_for(f"!{by_id('btn-pause')}.disabled")
            assert await page.evaluate(f"{by_id('read-only')}.hidden") is True


async def test_says_how_many_earlier_lines_the_server_did_not_keep(page: Page) -> None:
    async def long_output(ctx: TaskContext) -> None:
        ctx.output("\n".join(f"row {n}" for n in range(1, 1_251)))
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True) as stack:
            stack.executor.submit(long_output, task_id="t1")
            await open_dashboard(page, stack)
            await wait_text(page, row_cell("t1", "state"), "running")
            await page.click(row_cell("t1", "state"))
            await page.wait_for(f"{_lines('detail-output')}.length === 200")
            # The server keeps 1,000 lines a task: five pages reach the oldest kept.
            for shown in (400, 600, 800, 1000):
                await page.click("#btn-load-earlier")
                await page.wait_for(f"{_lines('detail-output')}.length === {shown}")
            await page.wait_for(f"!{by_id('detail-not-kept')}.hidden")
            assert await page.text("#detail-not-kept") == "250 earlier lines not kept"
            assert (await page.evaluate(_lines("detail-output")))[0] == "row 251"
            assert await page.evaluate(f"{by_id('btn-load-earlier')}.hidden") is True
