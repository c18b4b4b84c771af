"""A small Chrome DevTools Protocol driver for headless Chromium, over trio-websocket.

Just enough for the dashboard tests: start the browser, open a page, navigate,
evaluate JavaScript, wait for a condition, and always clean the browser up.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
POLL = 0.05
MAX_CDP_MESSAGE = 64 << 20


class CdpError(Exception):
    """The browser answered a command with an error, or a page script threw."""


@attrs.define(eq=False)
class Page:
    """One browser tab, driven through a flattened CDP session."""

    _ws: WebSocketConnection
    session_id: str
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await _call(self._ws, self._ids, method, params, self.session_id)

    async def navigate(self, url: str) -> None:
        reply = await self.call("Page.navigate", url=url)
        if reply.get("errorText"):
            raise CdpError(f"navigate to {url}: {reply['errorText']}")
        await self.wait_for("document.readyState === 'complete'")

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{expression!r} threw: {text}")
        return reply.get("result", {}).get("value")

    async def text(self, selector: str) -> str:
        value = await self.evaluate(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent ?? null"
        )
        if value is None:
            raise CdpError(f"no element matches {selector!r}")
        return str(value)

    async def click(self, selector: str) -> None:
        found = await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el || el.disabled) return false; el.click(); return true; })()"
        )
        if not found:
            raise CdpError(f"no enabled element matches {selector!r}")

    async def wait_for(self, expression: str) -> Any:
        """Poll ``expression`` until it is truthy; callers bound the wait with fail_after."""
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            await trio.sleep(POLL)


async def _call(
    ws: WebSocketConnection,
    ids: itertools.count[int],
    method: str,
    params: dict[str, Any],
    session_id: str | None = None,
) -> dict[str, Any]:
    message_id = next(ids)
    message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
    if session_id is not None:
        message["sessionId"] = session_id
    await ws.send_message(json.dumps(message))
    while True:
        # Commands are sent one at a time, so anything else is an event to skip.
        reply = json.loads(await ws.get_message())
        if reply.get("id") != message_id:
            continue
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result", {})
        return result


async def _devtools_url(user_data: Path, process: trio.Process) -> str:
    port_file = user_data / "DevToolsActivePort"
    while True:
        if process.returncode is not None:
            raise CdpError(f"chromium exited with {process.returncode} before it was ready")
        try:
            port, path = port_file.read_text().split()[:2]
        except (FileNotFoundError, ValueError):
            await trio.sleep(POLL)
            continue
        return f"ws://127.0.0.1:{port}{path}"


def _command(user_data: Path) -> list[str]:
    assert CHROMIUM is not None
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        f"--user-data-dir={user_data}",
        "--remote-debugging-port=0",
        "about:blank",
    ]


def _kill_group(process: trio.Process) -> None:
    # Chromium starts helpers (zygote, renderers) in the session made for it; end them all.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@asynccontextmanager
async def open_page(user_data: Path, *, startup_timeout: float = 30) -> AsyncIterator[Page]:
    """Start headless Chromium, open one tab, and close everything on the way out."""
    process = await trio.lowlevel.open_process(
        _command(user_data),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with trio.fail_after(startup_timeout):
            url = await _devtools_url(user_data, process)
        async with open_websocket_url(
            url, max_message_size=MAX_CDP_MESSAGE, connect_timeout=startup_timeout
        ) as ws:
            ids = itertools.count(1)
            with trio.fail_after(startup_timeout):
                target = await _call(ws, ids, "Target.createTarget", {"url": "about:blank"})
                params = {"targetId": target["targetId"], "flatten": True}
                attached = await _call(ws, ids, "Target.attachToTarget", params)
            page = Page(ws, attached["sessionId"], ids)
            try:
                yield page
            finally:
                with trio.move_on_after(5) as scope, suppress(ConnectionClosed, CdpError):
                    scope.shield = True
                    # The browser may hang up before it answers.
                    await _call(ws, ids, "Browser.close", {})
    finally:
        with trio.move_on_after(5) as scope:
            scope.shield = True
            await process.wait()
        _kill_group(process)
        with trio.CancelScope(shield=True):
            await process.wait()
