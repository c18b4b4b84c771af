"""``subscribe`` with a ``since`` beyond the newest event (issue 17, item 9).

Such a seq was never sent by this server run (2**63, 10**30: made up, or from an
earlier run): it used to be accepted silently, replaying nothing while the client
believed itself up to date. It now gets an ``error`` reply; the connection lives on,
and ``runcast watch`` and the dashboard resubscribe without ``since``.
"""

from __future__ import annotations

import io

import pytest
import trio
from _api_support import FakeTask, request, served, ws_client

from api.clients._connection import Backoff, open_client
from api.clients._view import SessionView
from api.clients._watch import Screen, _Follower
from events import TaskStarted

TIMEOUT = 10


class _ScreenWaiting(Screen):
    """Says when the view shows the session and the running task t2 (drawn each turn)."""

    def __init__(self, out: io.StringIO) -> None:
        super().__init__(out, redraw=False)
        self.caught_up = trio.Event()

    def draw(self, url: str, view: SessionView, now: float) -> None:
        super().draw(url, view, now)
        if view.session is not None and "t2" in view.tasks:
            self.caught_up.set()


@pytest.mark.parametrize("beyond", [2**63, 10**30, 1])
async def test_since_beyond_the_newest_event_is_an_error_and_the_connection_lives(
    beyond: int,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            for task_id in ("t1", "t2", "t3"):
                stack.publisher.publish(TaskStarted(task_id=task_id))
            newest = stack.publisher.last_seq
            since = beyond if beyond > 1 else newest + 1
            refused = await request(ws, {"type": "subscribe", "task_id": "*", "since": since})
            task = await request(ws, {"type": "subscribe", "task_id": "t1", "since": since})
            pong = await request(ws, {"type": "ping"})
            at_newest = await request(ws, {"type": "subscribe", "task_id": "*", "since": newest})
    assert newest >= 3
    assert refused == {
        "type": "error",
        "error": f"since: {since} is beyond the newest event (seq {newest}), so it is not "
        "from this server run; subscribe without since to start afresh",
        "task_id": "*",
    }
    assert task["type"] == "error"
    assert task["task_id"] == "t1"
    assert pong == {"type": "pong"}
    assert at_newest == {"type": "subscribed", "task_id": "*", "since": newest}


async def test_a_huge_since_is_shown_shortened() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack, ws_client(stack.port) as ws:
            refused = await request(ws, {"type": "subscribe", "task_id": "*", "since": 10**400})
    assert refused["error"].startswith("since: 10000000000000000000... (401 digits) is beyond")


async def test_watch_resubscribes_afresh_when_its_since_is_refused() -> None:
    with trio.fail_after(TIMEOUT):
        async with served() as stack:
            stack.executor.rows.append(FakeTask(task_id="t2", state="running"))
            url = f"ws://127.0.0.1:{stack.port}/ws"
            # The view of a server run that got much further than this one.
            view = SessionView(last_seq=10**6, needs_resync=False)
            out = io.StringIO()
            screen = _ScreenWaiting(out)
            async with open_client(url) as client, trio.open_nursery() as nursery:
                follower = _Follower(client, url, None, view, screen, Backoff())
                nursery.start_soon(follower.run)
                await screen.caught_up.wait()
                nursery.cancel_scope.cancel()
    assert "server error: since: 1000000 is beyond the newest event" in out.getvalue()
    assert view.running()[0].task_id == "t2"
