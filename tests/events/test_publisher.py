"""The publisher: routing, seq, replay, gaps, conflation, drops, close."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from events import (
    ExecutorPaused,
    Gap,
    Published,
    Publisher,
    SessionUpdate,
    Subscription,
    TaskOutput,
    TaskStarted,
)


def _line(task_id: str, n: int) -> TaskOutput:
    return TaskOutput(task_id=task_id, line=f"line {n}")


def _update(running: int) -> SessionUpdate:
    return SessionUpdate(tasks_running=running)


def _drain(sub: Subscription) -> list[Published | Gap]:
    return list(sub.drain())


def _seqs(items: list[Published | Gap]) -> list[int]:
    return [item.seq for item in items if isinstance(item, Published)]


def test_global_subscriber_sees_everything_task_subscriber_only_its_task() -> None:
    publisher = Publisher()
    everything = publisher.subscribe("*")
    only_a = publisher.subscribe("a")
    only_b = publisher.subscribe("b")
    publisher.publish(_line("a", 1))
    publisher.publish(_line("b", 1))
    publisher.publish(ExecutorPaused(reason="lunch"))
    publisher.publish(_update(0))

    assert [i.event.event_name for i in _drain(everything) if isinstance(i, Published)] == [
        "task_output",
        "task_output",
        "executor_paused",
        "session_update",
    ]
    a_items = _drain(only_a)
    assert [i.task_id for i in a_items if isinstance(i, Published)] == ["a"]
    assert [i.task_id for i in _drain(only_b) if isinstance(i, Published)] == ["b"]


def test_each_event_is_encoded_once_and_shared() -> None:
    publisher = Publisher()
    subs = [publisher.subscribe("*") for _ in range(3)]
    published = publisher.publish(_line("a", 1))
    assert published is not None
    received = [sub.receive_nowait() for sub in subs]
    assert all(item is published for item in received)
    assert json.loads(published.wire)["data"]["line"] == "line 1"


async def test_seq_strictly_increases_under_concurrent_publishers() -> None:
    publisher = Publisher(history_size=5000)
    seen: list[int] = []
    publisher.add_listener(lambda item: seen.append(item.seq))

    async def publish_many(task_id: str) -> None:
        for n in range(200):
            publisher.publish(_line(task_id, n))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(publish_many, f"t{n}")
    assert len(seen) == 2000
    assert seen == sorted(seen)
    assert len(set(seen)) == 2000
    assert publisher.last_seq == 2000


def test_replay_after_seq_then_live() -> None:
    publisher = Publisher()
    for n in range(5):
        publisher.publish(_line("a", n))
        publisher.publish(_line("b", n))
    sub = publisher.subscribe("a", since=4)
    publisher.publish(_line("a", 99))
    items = _drain(sub)
    assert not any(isinstance(i, Gap) for i in items)
    # a's events were seqs 1,3,5,7,9; after 4 come 5,7,9 then the live one (11).
    assert _seqs(items) == [5, 7, 9, 11]


def test_replay_skips_session_updates_and_since_zero_replays_all() -> None:
    publisher = Publisher()
    publisher.publish(_line("a", 0))
    publisher.publish(_update(1))
    publisher.publish(_line("a", 1))
    sub = publisher.subscribe("*", since=0)
    assert _seqs(_drain(sub)) == [1, 3]


def test_gap_marker_when_history_is_gone() -> None:
    publisher = Publisher(history_size=3)
    for n in range(10):
        publisher.publish(_line("a", n))
    sub = publisher.subscribe("*", since=2)
    items = _drain(sub)
    gap = items[0]
    assert isinstance(gap, Gap)
    assert (gap.first_seq, gap.last_seq, gap.reason, gap.missed) == (3, 7, "history", None)
    assert _seqs(items[1:]) == [8, 9, 10]
    assert json.loads(gap.wire)["type"] == "gap"


def test_no_gap_when_since_is_within_history() -> None:
    publisher = Publisher(history_size=3)
    for n in range(10):
        publisher.publish(_line("a", n))
    items = _drain(publisher.subscribe("*", since=7))
    assert _seqs(items) == [8, 9, 10]
    assert not any(isinstance(i, Gap) for i in items)


def test_session_update_is_conflated_for_a_stalled_subscriber() -> None:
    publisher = Publisher(buffer_size=4)
    stalled = publisher.subscribe("*")
    publisher.publish(_line("a", 0))
    for running in range(1, 50):
        publisher.publish(_update(running))
    publisher.publish(_line("a", 1))
    items = _drain(stalled)
    updates = [i for i in items if isinstance(i, Published) and i.event_name == "session_update"]
    assert len(updates) == 1
    assert isinstance(updates[0].event, SessionUpdate)
    assert updates[0].event.tasks_running == 49
    assert stalled.conflated == 48
    assert stalled.dropped == 0


def _is_update(item: Published | Gap) -> bool:
    return isinstance(item, Published) and isinstance(item.event, SessionUpdate)


def _updates_seen_while_behind(
    publisher: Publisher,
    sub: Subscription,
    *,
    rounds: int,
    lines_per_round: int,
    reads_per_round: int,
) -> tuple[list[int], list[Published | Gap]]:
    """Each round publishes lines and one update, then the reader takes a few items.

    Returns the index (in what was read) of each session_update, and what was read.
    """
    read: list[Published | Gap] = []
    n = 0
    for running in range(rounds):
        for _ in range(lines_per_round):
            publisher.publish(_line("a", n))
            n += 1
        publisher.publish(_update(running))
        for _ in range(reads_per_round):
            read.append(sub.receive_nowait())
    positions = [i for i, item in enumerate(read) if _is_update(item)]
    return positions, read


def test_a_reader_with_a_standing_backlog_still_gets_updates() -> None:
    # Producer and reader at the same rate with a backlog between them: no drops,
    # so no gap, yet a policy that moves the one queued update to the tail on each
    # newer one would keep it a backlog away for ever.
    publisher = Publisher(buffer_size=1024)
    sub = publisher.subscribe("*")
    backlog = 50
    for n in range(backlog):
        publisher.publish(_line("b", n))
    positions, read = _updates_seen_while_behind(
        publisher, sub, rounds=400, lines_per_round=1, reads_per_round=2
    )
    assert positions, "a reader with a backlog never saw a session_update"
    spacing = [b - a for a, b in zip([0, *positions], positions, strict=False)]
    assert max(spacing) <= backlog + 3, spacing
    assert sub.dropped == 0
    assert _seqs(read) == sorted(_seqs(read))


def test_an_overloaded_reader_still_gets_updates_in_bounded_reads() -> None:
    # Three lines and an update per round, two items read: the buffer fills and
    # overflows for good. The reader must still get an update every buffer's worth
    # of reads, not only gaps and lines.
    capacity = 16
    publisher = Publisher(buffer_size=capacity)
    sub = publisher.subscribe("*")
    positions, read = _updates_seen_while_behind(
        publisher, sub, rounds=300, lines_per_round=3, reads_per_round=2
    )
    assert sub.dropped > 0
    # A queue may hold its capacity in lines with a gap between each two (the
    # reader frees a slot, a line takes it, the next is dropped), and two updates.
    most_queued = 2 * capacity + 2
    spacing = [b - a for a, b in zip([0, *positions], positions, strict=False)]
    assert max(spacing) <= most_queued + 2, spacing
    assert positions[-1] > len(read) - (most_queued + 2)
    # Never a seq ahead of one still to come: since = the highest seq seen is safe.
    highest = 0
    for item in read:
        first = item.seq if isinstance(item, Published) else item.first_seq
        assert first > highest
        highest = item.seq if isinstance(item, Published) else item.last_seq
    # What is still queued ends with the newest update.
    rest = _drain(sub)
    last = rest[-1]
    assert isinstance(last, Published)
    assert isinstance(last.event, SessionUpdate)
    assert last.event.tasks_running == 299


def test_at_most_two_updates_wait_in_a_stuck_queue() -> None:
    publisher = Publisher(buffer_size=4)
    stuck = publisher.subscribe("*")
    for running in range(100):
        publisher.publish(_line("a", running))
        publisher.publish(_update(running))
    items = _drain(stuck)
    updates = [i.event for i in items if isinstance(i, Published) and _is_update(i)]
    assert [u.tasks_running for u in updates if isinstance(u, SessionUpdate)] == [0, 99]
    assert len(items) <= 4 + 3
    assert stuck.conflated == 98


def test_newest_update_still_arrives_when_event_buffer_is_full() -> None:
    publisher = Publisher(buffer_size=2)
    stalled = publisher.subscribe("*")
    for n in range(5):
        publisher.publish(_line("a", n))
    publisher.publish(_update(7))
    items = _drain(stalled)
    last = items[-1]
    assert isinstance(last, Published)
    assert isinstance(last.event, SessionUpdate)
    assert last.event.tasks_running == 7


def test_overflow_is_counted_and_announced_as_a_gap() -> None:
    publisher = Publisher(buffer_size=3)
    slow = publisher.subscribe("*")
    fast = publisher.subscribe("*", buffer_size=100)
    for n in range(10):
        publisher.publish(_line("a", n))
    assert slow.dropped == 7
    assert publisher.dropped_total == 7
    items = _drain(slow)
    assert _seqs(items) == [1, 2, 3]
    gap = items[3]
    assert isinstance(gap, Gap)
    assert (gap.first_seq, gap.last_seq, gap.missed, gap.reason) == (4, 10, 7, "overflow")
    assert len(_drain(fast)) == 10
    # After draining, new events flow again.
    publisher.publish(_line("a", 11))
    assert _seqs(_drain(slow)) == [11]


def test_a_stuck_subscriber_holds_one_gap_however_many_updates_pass() -> None:
    publisher = Publisher(buffer_size=3)
    stuck = publisher.subscribe("*")
    for n in range(100):
        publisher.publish(_line("a", n))
        if n % 2:
            publisher.publish(_update(n))
    # Three events, one gap before the newest update, and at most one after it.
    assert len(stuck) <= 3 + 3
    items = _drain(stuck)
    gaps = [item for item in items if isinstance(item, Gap)]
    assert len(gaps) == 1
    assert (gaps[0].first_seq, gaps[0].missed) == (5, 97)
    newest = items[-1]
    assert isinstance(newest, Published)
    assert gaps[0].last_seq == newest.seq - 1  # the newest update, after the gap
    assert stuck.dropped == 97


async def test_publish_never_blocks_and_receiver_wakes() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("a")
    received: list[int] = []

    async def consume() -> None:
        async for item in sub:
            assert isinstance(item, Published)
            received.append(item.seq)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        publisher.publish(_line("a", 0))
        publisher.publish(_line("a", 1))
        await trio.testing.wait_all_tasks_blocked()
        assert received == [1, 2]
        sub.close()
    assert received == [1, 2]


async def test_receive_is_cancellable(autojump_clock: trio.testing.MockClock) -> None:
    sub = Publisher().subscribe("*")
    with trio.move_on_after(1) as scope:
        await sub.receive()
    assert scope.cancelled_caught


def test_close_semantics() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    publisher.publish(_line("a", 0))
    publisher.close()
    publisher.close()  # idempotent
    assert publisher.publish(_line("a", 1)) is None
    assert _seqs(_drain(sub)) == [1]  # what was buffered can still be read
    with pytest.raises(trio.EndOfChannel):
        sub.receive_nowait()
    late = publisher.subscribe("*")
    assert late.closed
    with pytest.raises(trio.EndOfChannel):
        late.receive_nowait()
    assert publisher.subscriber_count() == 0


async def test_closed_subscription_ends_iteration() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    publisher.publish(_line("a", 0))
    await sub.aclose()
    await sub.aclose()
    items = [item async for item in sub]
    assert len(items) == 1
    assert publisher.subscriber_count() == 0


def test_no_leaked_subscriptions_after_many_cycles() -> None:
    publisher = Publisher()
    for n in range(10_000):
        with publisher.subscribe(f"task-{n % 37}") as sub:
            publisher.publish(TaskStarted(task_id=f"task-{n % 37}"))
            assert len(sub) == 1
        global_sub = publisher.subscribe("*")
        global_sub.close()
        global_sub.close()
    assert publisher.subscriber_count() == 0
    assert publisher.topic_count == 0


def test_listener_sees_every_event_and_can_be_removed() -> None:
    publisher = Publisher(buffer_size=1)
    seen: list[str] = []
    remove = publisher.add_listener(lambda item: seen.append(item.event_name))
    publisher.subscribe("*")  # a stalled subscriber does not affect listeners
    for n in range(5):
        publisher.publish(_line("a", n))
    remove()
    remove()
    publisher.publish(_line("a", 5))
    assert seen == ["task_output"] * 5


def test_deliver_to_one_subscriber_only() -> None:
    publisher = Publisher()
    target = publisher.subscribe("*")
    other = publisher.subscribe("*")
    publisher.deliver_to(target, _update(3))
    assert len(target) == 1
    assert len(other) == 0
    assert publisher.history_since(0) == []


def test_publisher_continuing_a_session_announces_older_history_as_gone() -> None:
    publisher = Publisher(last_seq=500)
    publisher.publish(_line("a", 0))
    items = _drain(publisher.subscribe("*", since=450))
    gap = items[0]
    assert isinstance(gap, Gap)
    assert (gap.first_seq, gap.last_seq, gap.reason) == (451, 500, "history")
    assert _seqs(items[1:]) == [501]


def test_after_publish_runs_once_the_event_reached_everyone() -> None:
    publisher = Publisher()
    sub = publisher.subscribe("*")
    order: list[str] = []

    def react(item: Published) -> None:
        if isinstance(item.event, TaskStarted):
            publisher.after_publish(lambda: order.append(f"after {len(sub)} queued"))
            publisher.after_publish(lambda: publisher.publish(_update(1)))

    publisher.add_listener(react)
    publisher.publish(TaskStarted(task_id="a"))
    assert order == ["after 1 queued"]
    assert [i.event_name for i in _drain(sub) if isinstance(i, Published)] == [
        "task_started",
        "session_update",
    ]
    publisher.after_publish(lambda: order.append("outside"))  # not publishing: runs at once
    assert order[-1] == "outside"
