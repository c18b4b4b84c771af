"""The dashboard page in real headless Chromium, against a live runcast server.

The page is opened with ``?token=`` (the server requires one), so these also show
the token reaching the stylesheet, the script, ``/api/tasks`` and the WebSocket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from _cdp import CHROMIUM, Page, open_page
from _live_stack import OPERATOR_TOKEN, LiveStack, eventually, live_stack

from events import Publisher
from executor import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed; scripts/ensure-system-deps installs it")
    async with open_page(tmp_path / "chromium") as opened:
        yield opened


def by_id(element_id: str) -> str:
    return f"document.getElementById({json.dumps(element_id)})"


def row_cell(task_id: str, cell: str) -> str:
    return f'tr[data-task-id="{task_id}"] td.{cell}'


async def wait_text(page: Page, selector: str, text: str) -> None:
    expression = f"document.querySelector({json.dumps(selector)})?.textContent"
    await page.wait_for(f"{expression} === {json.dumps(text)}")


async def open_dashboard(page: Page, stack: LiveStack) -> None:
    await page.navigate(f"{stack.server.url}?token={OPERATOR_TOKEN}")
    await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'connected'")
    await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")


async def test_shows_values_that_change_live(page: Page) -> None:
    with trio.fail_after(60):
        async with live_stack(tokens=True, budget_usd=1.0) as stack:
            feed = stack.start_burner("t1", "alpha")
            await feed.send(1000)
            await eventually(lambda: stack.broadcaster.snapshot().input_tokens == 1000)
            await open_dashboard(page, stack)

            await wait_text(page, "#tokens-input", "1,000")
            assert await page.text("#tokens-total") == "1,600"
            assert await page.text("#tokens-output") == "100"
            assert await page.text("#tokens-cache-read") == "500"
            assert await page.text("#cost") == "$0.01"
            assert await page.text("#tasks-running") == "1"
            assert await page.text("#budget-text") == "$0.01 of $1.00 (1%) · $0.99 left"
            await wait_text(page, row_cell("t1", "state"), "running")
            assert await page.text(row_cell("t1", "name")) == "alpha"
            assert await page.text(row_cell("t1", "in")) == "1,000"
            assert await page.evaluate(f"{by_id('paused-badge')}.hidden") is True

            # Live: more usage reaches the session panel and the task row without a reload.
            await feed.send(250)
            await wait_text(page, "#tokens-input", "1,250")
            await wait_text(page, row_cell("t1", "in"), "1,250")
            assert await page.text("#tokens-total") == "2,000"

            # The duration ticks on between session updates.
            shown = await page.text("#session-duration")
            await page.wait_for(f"{by_id('session-duration')}.textContent !== {json.dumps(shown)}")

            # A finished task changes state in the table.
            await feed.aclose()
            await wait_text(page, row_cell("t1", "state"), "completed")
            await wait_text(page, "#tasks-completed", "1")


async def test_pause_round_trip_from_its_button(page: Page) -> None:
    with trio.fail_after(60):
        async with live_stack(tokens=True) as stack:
            stack.start_burner("t1")
            await open_dashboard(page, stack)
            await page.wait_for(f"!{by_id('btn-pause')}.disabled")
            assert await page.evaluate(f"{by_id('btn-resume')}.disabled") is True

            await page.click("#btn-pause")
            await page.wait_for(f"!{by_id('paused-badge')}.hidden")
            assert stack.executor.is_paused
            await wait_text(page, "#command-result", "pause: paused")
            await page.wait_for(f"!{by_id('btn-resume')}.disabled")
            assert await page.evaluate(f"{by_id('btn-pause')}.disabled") is True

            await page.click("#btn-resume")
            await page.wait_for(f"{by_id('paused-badge')}.hidden")
            assert not stack.executor.is_paused
            await wait_text(page, "#command-result", "resume: resumed")


async def test_reconnects_and_clears_the_stale_mark_after_a_restart(page: Page) -> None:
    with trio.fail_after(90):
        async with live_stack(tokens=True) as stack:
            port = stack.port
            feed = stack.start_burner("t1", "before")
            await feed.send(100)
            await open_dashboard(page, stack)
            await wait_text(page, "#tokens-input", "100")
            await wait_text(page, row_cell("t1", "name"), "before")

        # The server is gone: the page marks its data stale and keeps retrying.
        await page.wait_for(f"{by_id('session')}.dataset.stale === 'true'")
        assert await page.evaluate(f"{by_id('tasks')}.dataset.stale") == "true"
        assert await page.evaluate(f"{by_id('conn-status')}.dataset.state") != "connected"
        assert await page.text("#tokens-input") == "100"  # the last values stay, marked

        async with live_stack(tokens=True, port=port) as again:
            feed = again.start_burner("t2", "after")
            await feed.send(42)
            await eventually(lambda: again.broadcaster.snapshot().input_tokens == 42)
            await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'connected'")
            await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")
            await wait_text(page, "#tokens-input", "42")
            await wait_text(page, row_cell("t2", "name"), "after")
            assert await page.evaluate(f"{by_id('tasks')}.dataset.stale") == "false"
            # The old server's task is not shown as if it belonged to the new session.
            assert await page.evaluate("document.querySelector('tr[data-task-id=\"t1\"]')") is None


# Runs before the dashboard's own script: keeps what the page sends and the
# types and highest seq of what it receives, so a test can read them back.
RECORD_FRAMES = """
(() => {
  const sent = (window.__sentFrames = []);
  const received = (window.__receivedTypes = []);
  window.__maxSeq = null;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (message) => {
        const frame = JSON.parse(message.data);
        received.push(frame.type);
        if (typeof frame.seq === "number") {
          window.__maxSeq = Math.max(window.__maxSeq ?? 0, frame.seq);
        }
      });
    }
    send(data) {
      sent.push(JSON.parse(data));
      return super.send(data);
    }
  };
})();
"""


async def test_resubscribes_with_since_and_replays_what_it_missed(page: Page) -> None:
    await page.call("Page.enable")
    await page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_FRAMES)
    with trio.fail_after(90):
        async with live_stack(tokens=True) as stack:
            port = stack.port
            feed = stack.start_burner("t1", "before")
            await feed.send(100)
            await open_dashboard(page, stack)
            await wait_text(page, "#tokens-input", "100")
            session_id = stack.broadcaster.snapshot().session_id
        await page.wait_for(f"{by_id('session')}.dataset.stale === 'true'")
        last_seen = await page.evaluate("window.__maxSeq")
        assert isinstance(last_seen, int)
        assert last_seen > 0
        await page.evaluate("window.__receivedTypes.length = 0")

        # The restarted server carries the sequence on (as a resumed stored
        # session does) and publishes while the page is still backing off.
        async with live_stack(
            tokens=True,
            port=port,
            publisher=Publisher(last_seq=last_seen),
            session_id=session_id,
        ) as again:
            feed = again.start_burner("t2", "after")
            await feed.send(42)
            await eventually(lambda: again.broadcaster.snapshot().input_tokens == 42)
            await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")
            await wait_text(page, row_cell("t2", "name"), "after")
            await wait_text(page, "#tokens-input", "42")

            subscribes = [
                frame
                for frame in await page.evaluate("window.__sentFrames")
                if frame["type"] == "subscribe"
            ]
            assert subscribes[0] == {"type": "subscribe", "task_id": "*"}
            assert subscribes[-1] == {"type": "subscribe", "task_id": "*", "since": last_seen}
            received = await page.evaluate("window.__receivedTypes")
            # Replayed from `since`: no gap, no refusal, so no resync was needed
            # and the row of the task from before the restart stays.
            assert "gap" not in received
            assert "error" not in received
            assert await page.text(row_cell("t1", "name")) == "before"


async def test_says_when_a_restarted_server_refuses_the_token(page: Page) -> None:
    with trio.fail_after(90):
        async with live_stack(tokens=True) as stack:
            port = stack.port
            await open_dashboard(page, stack)
        # Back on the same port, but with a rotated operator token.
        async with live_stack(tokens=True, port=port, operator_token="rotated-secret"):
            await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'refused'")
            text = await page.text("#conn-status")
            assert text.startswith("refused (401): check the ?token= of this page; retrying in "), (
                text
            )
            assert await page.evaluate(f"{by_id('session')}.dataset.stale") == "true"
        # The operator puts the page's token back: the refusal clears on its own.
        async with live_stack(tokens=True, port=port):
            await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'connected'")
            await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")


async def test_loads_every_task_page_after_page(page: Page) -> None:
    """More tasks than one /api/tasks page holds (1,000): every one reaches the table."""

    async def queued(ctx: TaskContext) -> None:
        await trio.sleep_forever()

    with trio.fail_after(60):
        async with live_stack(tokens=True) as stack:
            stack.executor.pause()
            for index in range(1_234):
                stack.executor.submit(queued, task_id=f"q{index:04d}", name=f"job {index}")
            await open_dashboard(page, stack)
            await page.wait_for("document.querySelectorAll('#task-rows tr').length === 1234")
            assert await page.text(row_cell("q0000", "name")) == "job 0"
            assert await page.text(row_cell("q1233", "name")) == "job 1233"
            assert await page.text(row_cell("q1233", "state")) == "queued"
