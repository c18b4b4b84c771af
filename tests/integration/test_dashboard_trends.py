"""The session over time on the dashboard, in headless Chromium (issue 22): the cost
and tokens charts, the spend rate, the budget projection and usage per model, all
from the event stream."""

from __future__ import annotations

import re

import pytest
import trio
from _cdp import Page
from _live_stack import OPERATOR_TOKEN, eventually, live_stack
from test_dashboard import by_id, wait_text

from executor import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("quiet_server_logs")]

TIMEOUT = 60
STEPS = 15
STEP_TOKENS = 10_000  # $0.10 a step at the burner's $1 per 100,000 tokens


async def _other_model(ctx: TaskContext, go: trio.Event) -> None:
    await go.wait()
    ctx.record_usage(model="other-model", input_tokens=700, output_tokens=70, cost_usd=0.5)
    await trio.sleep_forever()


def _points(line_id: str) -> str:
    return f"{by_id(line_id)}.getAttribute('points').trim().split(' ').filter(Boolean).length"


async def test_charts_rate_projection_and_models_from_the_stream(page: Page) -> None:
    go = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with live_stack(tokens=True, budget_usd=100.0) as stack:
            feed = stack.start_burner("t1", "spender")
            stack.executor.submit(_other_model, go, task_id="t2")
            await page.navigate(f"{stack.server.url}?token={OPERATOR_TOKEN}")
            await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")
            assert await page.text("#models-empty") == "no usage yet"
            # About 3 s of steady spending, seen live.
            for _ in range(STEPS):
                await feed.send(STEP_TOKENS)
                await trio.sleep(0.2)
            go.set()
            spent = STEPS * STEP_TOKENS / 100_000 + 0.5
            await eventually(lambda: stack.broadcaster.snapshot().estimated_cost_usd >= spent)
            await wait_text(page, "#cost", f"${spent:.2f}")

            await page.wait_for(f"{_points('chart-cost-line')} >= 3")
            assert await page.evaluate(_points("chart-tokens-line")) >= 3
            assert await page.text("#chart-cost-top") == f"${spent:.2f}"

            rate_text = await page.text("#spend-rate")
            match = re.fullmatch(r"\$(\d+\.\d+)/min", rate_text)
            assert match, rate_text
            # $2 in about 3 s: tens of dollars a minute, whatever the exact timing.
            assert 5 < float(match.group(1)) < 200, rate_text
            eta = await page.text("#budget-eta")
            assert re.fullmatch(r"budget reached in (~\d+ min|under a minute) at this rate", eta), (
                eta
            )

            await wait_text(page, 'tr[data-model="other-model"] td.cost', "$0.50")
            assert await page.text('tr[data-model="other-model"] td.tokens') == "770"
            burner_tokens = STEPS * (STEP_TOKENS + STEP_TOKENS // 10 + STEP_TOKENS // 2)
            assert await page.text('tr[data-model="test-model"] td.tokens') == f"{burner_tokens:,}"
            assert await page.text('tr[data-model="test-model"] td.cost') == "$1.50"
            assert await page.evaluate(f"{by_id('models-empty')}.hidden") is True
