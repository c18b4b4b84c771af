"""Opening the dashboard of a live stack in a page, as an operator or a viewer."""

from __future__ import annotations

from _cdp import Page
from _live_stack import OPERATOR_TOKEN, LiveStack
from test_dashboard import by_id


async def open_dashboard(page: Page, stack: LiveStack, token: str = OPERATOR_TOKEN) -> None:
    """Navigate with ``token`` and wait until the page is connected and fresh."""
    await page.navigate(f"{stack.server.url}?token={token}")
    await page.wait_for(f"{by_id('conn-status')}.dataset.state === 'connected'")
    await page.wait_for(f"{by_id('session')}.dataset.stale === 'false'")
