"""``runcast watch``: follow a server's session live in a terminal or a pipe."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import trio

from ._connection import Backoff, RuncastClient, fetch_tasks, open_client
from ._exceptions import ServerUnreachableError
from ._terminal import printable
from ._view import SessionView, format_session_line

if TYPE_CHECKING:
    from rich.live import Live

REDRAW_INTERVAL = 1.0
MIN_REDRAW_GAP = 0.1
# A quiet connection is probed with a ping; one silent for longer is taken for dead
# (a server that vanished without closing the TCP connection would hang us forever).
PING_AFTER = 15.0
DEAD_AFTER = 45.0
# rich's list: terminals that take text but no cursor movement.
_DUMB_TERMINALS = ("dumb", "unknown")


def can_redraw(out: TextIO) -> bool:
    """Whether ``out`` can show a live display: a terminal that moves its cursor.

    ``TERM=dumb`` (Emacs shells, some CI logs) cannot: rich would show nothing until
    the end, so ``watch`` prints lines there, as into a pipe.
    """
    return out.isatty() and os.environ.get("TERM", "").lower() not in _DUMB_TERMINALS


class Screen:
    """Where ``watch`` writes: a live display on a terminal, appended lines otherwise.

    On a terminal the screen is drawn with rich (``rich.live``), imported on the first
    draw: a piped ``watch`` never loads it. Every piece of the server's text (ids,
    names, errors, notices) is escaped (``printable``) on its way out, so only the
    display's own sequences reach the terminal. ``close()`` (or leaving ``with``)
    ends the display and gives the cursor back, Ctrl-C included.
    """

    def __init__(self, out: TextIO, *, redraw: bool) -> None:
        self.out = out
        self.redraw = redraw
        self.status = ""
        self._live: Live | None = None

    def __enter__(self) -> Screen:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def note(self, text: str) -> None:
        """A connection notice: a line when piped, the heading on a terminal."""
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
        from ._rich_view import open_live, watch_view  # rich: only once there is a screen

        if self._live is None:
            self._live = open_live(self.out)
        heading = f"runcast watch {url} - {self.status}"
        height = self._live.console.size.height
        frame = watch_view(heading, view, now, datetime.now(UTC), height)
        self._live.update(frame, refresh=True)

    def close(self) -> None:
        """End the live display, leaving its last frame on screen and the cursor shown."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()

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
