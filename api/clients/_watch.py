"""``runcast watch``: follow a server's session live in a terminal or a pipe."""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime
from typing import Any, TextIO

import attrs
import trio

from ._connection import Backoff, RuncastClient, fetch_tasks, open_client
from ._exceptions import ServerUnreachableError
from ._terminal import printable
from ._view import SessionView, format_session_line, format_task_line

REDRAW_INTERVAL = 1.0
MIN_REDRAW_GAP = 0.1
# A quiet connection is probed with a ping; one silent for longer is taken for dead
# (a server that vanished without closing the TCP connection would hang us forever).
PING_AFTER = 15.0
DEAD_AFTER = 45.0


class Screen:
    """Where ``watch`` writes: redrawn in place on a terminal, appended lines otherwise.

    Every line is escaped (``printable``) on its way out: ids, names, errors and
    notices carry the server's text, and only the redraw's own sequences may reach
    the terminal.
    """

    def __init__(self, out: TextIO, *, redraw: bool) -> None:
        self.out = out
        self.redraw = redraw
        self.status = ""

    def note(self, text: str) -> None:
        """A connection notice: a line when piped, the header line on a terminal."""
        self.status = text
        if not self.redraw:
            self._write(text)

    def line(self, text: str) -> None:
        """An event line; only printed when piped (a terminal shows the current state)."""
        if not self.redraw:
            self._write(text)

    def draw(self, url: str, view: SessionView, now: float) -> None:
        if not self.redraw:
            return
        height = shutil.get_terminal_size().lines
        lines = [f"runcast watch {url} - {self.status}"]
        if view.session is not None:
            stale = "  [stale]" if view.stale else ""
            lines.append(format_session_line(view.session, view.duration(now)) + stale)
        running = view.running()
        lines.append(f"running tasks: {len(running)}")
        moment = datetime.now(UTC)
        shown = running[: max(0, height - len(lines) - 1)]
        lines.extend(format_task_line(row, moment) for row in shown)
        if len(shown) < len(running):
            lines.append(f"... and {len(running) - len(shown)} more")
        # Home the cursor, clear the screen below it, then draw.
        self.out.write("\x1b[H\x1b[J" + "\n".join(map(printable, lines)) + "\n")
        self.out.flush()

    def _write(self, text: str) -> None:
        self.out.write(printable(text) + "\n")
        self.out.flush()


async def watch(
    url: str, token: str | None, screen: Screen, *, backoff: Backoff | None = None
) -> None:
    """Follow the session until cancelled.

    Failing to connect the first time raises (the CLI exits 3), and so does a refused
    token; after one successful connection it reconnects forever, with backoff.
    """
    backoff = backoff or Backoff()
    view = SessionView()
    connected_once = False
    while True:
        try:
            async with open_client(url, token=token) as client:
                connected_once = True
                screen.note(f"connected to {url}")
                await _Follower(client, url, token, view, screen, backoff).run()
        except ServerUnreachableError as exc:
            if not connected_once:
                raise
            view.mark_stale()
            delay = backoff.next_delay()
            screen.note(f"disconnected ({exc}); reconnecting in {delay:.1f}s")
            screen.draw(url, view, trio.current_time())
            await trio.sleep(delay)


@attrs.define(eq=False)
class _Follower:
    """One connection's worth of ``watch``: subscribe, then fold frames into the view."""

    client: RuncastClient
    url: str
    token: str | None
    view: SessionView
    screen: Screen
    backoff: Backoff
    last_frame_at: float = attrs.field(factory=trio.current_time)
    pinged: bool = False
    last_draw: float = -math.inf
    #: The ``since`` of a subscribe not yet answered (None: none, or sent without).
    since_sent: int | None = None

    async def run(self) -> None:
        if self.view.needs_resync:
            self.view.load_tasks(await fetch_tasks(self.url, self.token))
        await self._subscribe(self.view.last_seq)
        while True:
            with trio.move_on_after(REDRAW_INTERVAL):
                await self._handle(await self.client.receive())
            await self._check_alive()
            # A busy stream would otherwise repaint the terminal for every frame.
            now = trio.current_time()
            if now - self.last_draw >= MIN_REDRAW_GAP:
                self.screen.draw(self.url, self.view, now)
                self.last_draw = now

    async def _subscribe(self, since: int | None) -> None:
        frame: dict[str, Any] = {"type": "subscribe", "task_id": "*"}
        if since is not None:
            frame["since"] = since
        self.since_sent = since
        await self.client.send(frame)

    async def _handle(self, received: dict[str, Any]) -> None:
        self.last_frame_at, self.pinged = trio.current_time(), False
        if received["type"] == "subscribed":
            self.backoff.reset()
            self.since_sent = None
        elif received["type"] == "error" and self.since_sent is not None:
            # The server refused our since (a seq from another server run): start afresh.
            self.view.needs_resync = True
            await self._subscribe(None)
        notice = self.view.apply(received, trio.current_time())
        if notice is not None:
            self.screen.line(notice)
        if received.get("event") == "session_update":
            duration = self.view.duration(self.view.session_received_at)
            self.screen.line(format_session_line(self.view.session or {}, duration))
        if self.view.needs_resync:
            self.view.load_tasks(await fetch_tasks(self.url, self.token))

    async def _check_alive(self) -> None:
        quiet = trio.current_time() - self.last_frame_at
        if quiet >= DEAD_AFTER:
            raise ServerUnreachableError(f"{self.url}: no answer for {quiet:.0f}s")
        if quiet >= PING_AFTER and not self.pinged:
            self.pinged = True
            await self.client.send({"type": "ping"})
