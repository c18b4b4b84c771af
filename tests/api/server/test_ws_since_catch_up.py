"""``subscribe`` with a ``since`` a serve node has not read yet (issue 21, point 2).

A dashboard that moves from a node further ahead brings a seq the stream holds
but this node has not published: the subscribe waits (up to 5 s, the reader
answering other messages meanwhile) and then replays exactly what the client
missed. A single process, which numbers its own events, still refuses at once.
Over memory streams on the mock clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
import trio
import trio.testing
import wsproto.events
from _api_support import RawWebSocket

from api import RuncastServer, ServerConfig
from broadcaster import SessionBroadcaster
from events import Publisher, RelayPublisher, TaskOutput

CONFIG = ServerConfig(port=0, ping_interval=20.0, ping_timeout=20.0)
WHEN = datetime(2026, 3, 4, tzinfo=UTC)
FRESH = "subscribe without since to start afresh"


@attrs.define(eq=False)
class Counter:
    """The stream's seq counter as the node's follower would report it."""

    value: int | None

    async def __call__(self, seq: int) -> int | None:
        await trio.lowlevel.checkpoint()
        return self.value


def _node(published_through: int, counter: int | None) -> RelayPublisher:
    """The publisher of a serve node that has read the stream up to ``published_through``."""
    publisher = RelayPublisher()
    publisher.stream_counter = Counter(counter)
    for seq in range(1, published_through + 1):
        _publish(publisher, seq)
    return publisher


def _publish(publisher: RelayPublisher, seq: int) -> None:
    publisher.publish_at(seq, WHEN, TaskOutput(task_id="t1", line=f"line {seq}"))


@asynccontextmanager
async def _client(publisher: Publisher) -> AsyncIterator[RawWebSocket]:
    server = RuncastServer(CONFIG, publisher, SessionBroadcaster(publisher))
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle_connection, server_side)
        raw = RawWebSocket(client)
        await raw.handshake()
        try:
            yield raw
        finally:
            await client.aclose()


async def _send(raw: RawWebSocket, frame: dict[str, Any]) -> None:
    await raw.send(wsproto.events.TextMessage(json.dumps(frame)))


async def _frame(raw: RawWebSocket) -> dict[str, Any]:
    event = await raw.next_event()
    assert isinstance(event, wsproto.events.TextMessage), event
    frame = json.loads(event.data)
    assert isinstance(frame, dict)
    return frame


async def _nothing_sent(raw: RawWebSocket) -> None:
    await trio.testing.wait_all_tasks_blocked()
    with trio.move_on_after(0.01) as waited:
        frame = await raw.next_event()
        raise AssertionError(f"unexpected frame: {frame}")
    assert waited.cancelled_caught


def _subscribe(since: int | None, task_id: str = "*") -> dict[str, Any]:
    return {"type": "subscribe", "task_id": task_id, "since": since}


async def test_a_since_the_node_has_not_read_is_answered_once_it_has_with_what_was_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = _node(published_through=2, counter=6)
    async with _client(publisher) as raw:
        start = trio.current_time()
        await _send(raw, _subscribe(since=4))
        await _send(raw, {"type": "ping"})
        # The reader goes on while the subscribe waits.
        assert await _frame(raw) == {"type": "pong"}
        await trio.sleep(1)
        _publish(publisher, 3)
        await _nothing_sent(raw)
        await trio.sleep(1)
        _publish(publisher, 4)
        _publish(publisher, 5)  # read in the same batch, before the subscribe is answered
        assert await _frame(raw) == {"type": "subscribed", "task_id": "*", "since": 4}
        answered_after = trio.current_time() - start
        replayed = await _frame(raw)
        snapshot = await _frame(raw)
        _publish(publisher, 6)
        live = await _frame(raw)
    assert answered_after == pytest.approx(2.0, abs=0.02)
    assert (replayed["type"], replayed["seq"], replayed["data"]["line"]) == ("event", 5, "line 5")
    assert (snapshot["event"], snapshot["seq"]) == ("session_update", 5)
    assert (live["type"], live["seq"]) == ("event", 6)


async def test_a_task_subscription_waits_too(autojump_clock: trio.testing.MockClock) -> None:
    publisher = _node(published_through=1, counter=3)
    async with _client(publisher) as raw:
        await _send(raw, _subscribe(since=2, task_id="t1"))
        await trio.sleep(0.5)
        _publish(publisher, 2)
        _publish(publisher, 3)
        assert await _frame(raw) == {"type": "subscribed", "task_id": "t1", "since": 2}
        assert (await _frame(raw))["seq"] == 3


async def test_a_node_that_does_not_catch_up_in_5_s_says_how_far_behind_it_is(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = _node(published_through=2, counter=10)
    async with _client(publisher) as raw:
        start = trio.current_time()
        await _send(raw, _subscribe(since=8))
        await trio.sleep(1)
        _publish(publisher, 3)
        refused = await _frame(raw)
        waited = trio.current_time() - start
        await _send(raw, {"type": "ping"})
        pong = await _frame(raw)
    assert waited == pytest.approx(5.0, abs=0.02)
    assert refused == {
        "type": "error",
        "error": "since: 8 is ahead of this node: it is behind by 5 events (read up to seq 3) "
        f"and did not catch up within 5 s; retry, or {FRESH}",
        "task_id": "*",
    }
    assert pong == {"type": "pong"}  # the connection lives


@pytest.mark.parametrize(
    ("counter", "error"),
    [
        (
            4,
            "since: 9 is beyond the newest event of the session's stream (seq 4), so it is not "
            f"from this session; {FRESH}",
        ),
        (
            None,
            "since: 9 is past this node's newest event (seq 2) and the session's stream could "
            f"not be read to tell whether it holds it; retry, or {FRESH}",
        ),
    ],
)
async def test_a_since_the_stream_does_not_hold_is_refused_without_waiting(
    autojump_clock: trio.testing.MockClock, counter: int | None, error: str
) -> None:
    publisher = _node(published_through=2, counter=counter)
    async with _client(publisher) as raw:
        start = trio.current_time()
        await _send(raw, _subscribe(since=9))
        refused = await _frame(raw)
        assert trio.current_time() == start
    assert refused == {"type": "error", "error": error, "task_id": "*"}


async def test_a_newer_subscribe_replaces_one_still_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = _node(published_through=2, counter=10)
    async with _client(publisher) as raw:
        await _send(raw, _subscribe(since=8))
        await trio.sleep(1)
        await _send(raw, _subscribe(since=None))
        assert await _frame(raw) == {"type": "subscribed", "task_id": "*", "since": None}
        assert (await _frame(raw))["event"] == "session_update"
        await trio.sleep(10)  # past the first one's 5 s: it was given up, not refused
        await _nothing_sent(raw)
        for seq in range(3, 9):
            _publish(publisher, seq)
        seqs = [(await _frame(raw))["seq"] for _ in range(3, 9)]
        await _nothing_sent(raw)  # and not subscribed a second time
    assert seqs == [3, 4, 5, 6, 7, 8]


async def test_an_unsubscribe_gives_up_a_subscribe_still_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = _node(published_through=2, counter=10)
    async with _client(publisher) as raw:
        await _send(raw, _subscribe(since=8))
        await _send(raw, {"type": "unsubscribe"})
        assert await _frame(raw) == {"type": "unsubscribed", "task_id": None}
        for seq in range(3, 11):
            _publish(publisher, seq)
        await trio.sleep(10)
        await _nothing_sent(raw)
        assert publisher.subscriber_count() == 0


async def test_a_single_process_still_refuses_a_since_past_its_newest_event_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    for n in range(3):
        publisher.publish(TaskOutput(task_id="t1", line=f"line {n}"))
    async with _client(publisher) as raw:
        start = trio.current_time()
        await _send(raw, _subscribe(since=4))
        refused = await _frame(raw)
        assert trio.current_time() == start
        publisher.publish(TaskOutput(task_id="t1", line="line 3"))  # seq 4 exists now
        await _nothing_sent(raw)  # nothing was left waiting for it
    assert refused == {
        "type": "error",
        "error": "since: 4 is beyond the newest event (seq 3), so it is not from this "
        f"server run; {FRESH}",
        "task_id": "*",
    }
