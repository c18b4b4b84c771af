"""RelayPublisher.wait_for_seq: a node behind the stream waits to publish a seq the
stream holds, and says at once when the stream does not hold it (issue 21, point 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import trio
import trio.testing

from events import RelayPublisher, SeqWait, TaskOutput

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _line(n: int) -> TaskOutput:
    return TaskOutput(task_id="a", line=f"line {n}")


@attrs.define(eq=False)
class Counter:
    """A stream's seq counter as a follower reports it; records what it was asked."""

    value: int | None
    asked: list[int] = attrs.field(factory=list)

    async def __call__(self, seq: int) -> int | None:
        self.asked.append(seq)
        await trio.lowlevel.checkpoint()
        return self.value


def _publisher(published_through: int, counter: Counter | None) -> RelayPublisher:
    publisher = RelayPublisher()
    if counter is not None:
        publisher.stream_counter = counter
    for seq in range(1, published_through + 1):
        publisher.publish_at(seq, WHEN, _line(seq))
    return publisher


async def test_a_seq_already_published_is_reached_without_asking_the_stream() -> None:
    counter = Counter(10)
    publisher = _publisher(3, counter)
    assert await publisher.wait_for_seq(3) == SeqWait(True, 3, 3)
    assert counter.asked == []


async def test_a_seq_the_stream_holds_is_waited_for_until_published(
    autojump_clock: trio.testing.MockClock,
) -> None:
    counter = Counter(6)
    publisher = _publisher(2, counter)
    ended: list[tuple[float, SeqWait]] = []

    async def wait() -> None:
        outcome = await publisher.wait_for_seq(5)
        ended.append((trio.current_time(), outcome))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        for seq in (3, 4, 5):
            await trio.sleep(1)
            await trio.testing.wait_all_tasks_blocked()
            assert ended == []  # not before seq 5 is published
            publisher.publish_at(seq, WHEN, _line(seq))
    assert ended == [(3.0, SeqWait(True, 5, 6))]
    assert counter.asked == [5]


async def test_a_jump_past_the_seq_waited_for_reaches_it() -> None:
    publisher = _publisher(2, Counter(9))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.wait_for_seq, 4)
        nursery.start_soon(publisher.wait_for_seq, 6)
        await trio.testing.wait_all_tasks_blocked()
        publisher.publish_at(7, WHEN, _line(7))  # 3..6 were trimmed before this node read them
    assert publisher.last_seq == 7


async def test_waiters_wake_in_turn_each_at_its_own_seq() -> None:
    publisher = _publisher(0, Counter(3))
    woken: list[tuple[int, int]] = []

    async def wait(seq: int) -> None:
        await publisher.wait_for_seq(seq)
        woken.append((seq, publisher.last_seq))

    async with trio.open_nursery() as nursery:
        for seq in (3, 1, 2, 2):
            nursery.start_soon(wait, seq)
        for seq in (1, 2, 3):
            await trio.testing.wait_all_tasks_blocked()
            publisher.publish_at(seq, WHEN, _line(seq))
    assert sorted(woken) == [(1, 1), (2, 2), (2, 2), (3, 3)]


async def test_a_seq_past_the_streams_counter_is_not_reached_at_once() -> None:
    counter = Counter(4)
    publisher = _publisher(2, counter)
    with trio.testing.assert_checkpoints():
        assert await publisher.wait_for_seq(5) == SeqWait(False, 2, 4)
    assert counter.asked == [5]


async def test_an_unreadable_counter_is_said_as_none() -> None:
    publisher = _publisher(2, Counter(None))
    assert await publisher.wait_for_seq(3) == SeqWait(False, 2, None)


async def test_without_a_stream_nothing_past_the_last_seq_is_known() -> None:
    publisher = _publisher(2, None)
    assert await publisher.wait_for_seq(3) == SeqWait(False, 2, 2)


async def test_closing_ends_the_wait_not_reached() -> None:
    publisher = _publisher(2, Counter(9))
    ended: list[SeqWait] = []

    async def wait() -> None:
        ended.append(await publisher.wait_for_seq(5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        publisher.close()
    assert ended == [SeqWait(False, 2, 9)]
    assert await publisher.wait_for_seq(6) == SeqWait(False, 2, 2)


async def test_a_wait_given_up_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = _publisher(2, Counter(9))
    for seq in (5, 6, 5):
        with trio.move_on_after(5):
            await publisher.wait_for_seq(seq)
    # What the waits kept is gone with them, and later events are published as usual.
    assert publisher._seq_waits == {}
    assert publisher._next_wake == float("inf")
    assert publisher.publish_at(3, WHEN, _line(3)) is not None
