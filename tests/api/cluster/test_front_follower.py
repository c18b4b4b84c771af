"""The serve node's stream follower against a stream in memory: catch-up, stale while
Redis is away, entries already seen or undecodable, a counter that went back,
waiting for a store that falls behind, and the counter a client's since is checked
against."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import attrs
import trio
import trio.testing

from api.cluster import ClusterLink, ClusterState, RedisUnavailable, StreamEvent
from api.cluster._follower import StreamFollower
from api.store import StoreRecorder
from events import EventCodec, Published, RelayPublisher, SeqWait, TaskOutput

WHEN = datetime(2026, 4, 1, tzinfo=UTC)
CODEC = EventCodec()


def _entry(seq: int, text: str | None = None) -> StreamEvent:
    wire = (
        text if text is not None else CODEC.encode(0, WHEN, TaskOutput(task_id="a", line=f"{seq}"))
    )
    return StreamEvent(f"{seq}-0", seq, wire)


@attrs.define(eq=False)
class FakeStream:
    """What the follower asks of a ``ClusterLink``: the state and the events."""

    entries: list[StreamEvent] = attrs.field(factory=list)
    counter: int | None = None  # the seq counter; None: the last entry's seq
    down: bool = False
    reads: int = 0
    state_reads: int = 0
    #: How long a state read takes (the counter is the one when it began).
    state_takes: float = 0.0
    #: Reads take a second and return nothing while set: the node falls behind.
    held: bool = False

    def add(self, *entries: StreamEvent) -> None:
        self.entries.extend(entries)

    async def state(self) -> ClusterState:
        self.state_reads += 1
        last = self.entries[-1].seq if self.entries else 0
        seq = last if self.counter is None else self.counter
        await trio.sleep(self.state_takes)
        if self.down:
            raise RedisUnavailable("Redis state at redis://test: unavailable")
        return ClusterState(False, "", "", None, 0.0, "pause", "", seq, 2)

    async def read_events(
        self, after: str, *, count: int, block_ms: int | None
    ) -> list[StreamEvent]:
        self.reads += 1
        # A follower reading in a loop that never waits would hang the mock clock.
        assert self.reads <= 1000, "the follower reads without ever waiting"
        if self.down:
            await trio.lowlevel.checkpoint()
            raise RedisUnavailable("Redis read_events at redis://test: unavailable")
        position = int(after.split("-")[0])
        newer = [e for e in self.entries if int(e.entry_id.split("-")[0]) > position][:count]
        if self.held:
            await trio.sleep(1)  # a read that gets nothing back in time
            return []
        if not newer and block_ms is not None:
            await trio.sleep(block_ms / 1000)
        else:
            await trio.lowlevel.checkpoint()
        return newer


def _follower(stream: FakeStream, **options: Any) -> tuple[StreamFollower, list[bool]]:
    said: list[bool] = []
    follower = StreamFollower(
        cast(ClusterLink, stream), RelayPublisher(), on_stale=said.append, **options
    )
    return follower, said


async def test_catches_up_then_follows_and_says_when_current(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream()
    stream.add(*(_entry(seq) for seq in range(1, 1201)))
    follower, said = _follower(stream, read_batch=500)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        with trio.fail_after(5):
            await follower.wait_caught_up()
        assert follower.publisher.last_seq == 1200
        assert said == [False]
        stream.add(_entry(1201))
        await trio.sleep(2)
        assert follower.publisher.last_seq == 1201
        assert (follower.workers_live, follower.lag) == (2, 0)
        nursery.cancel_scope.cancel()


async def test_stale_while_redis_is_away_and_until_caught_up_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream()
    stream.add(_entry(1))
    follower, said = _follower(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await follower.wait_caught_up()
        stream.down = True
        await trio.sleep(3)
        assert follower.stale
        stream.add(_entry(2), _entry(3))
        stream.down = False
        await trio.sleep(6)  # the backoff has reached seconds by now
        assert not follower.stale
        assert follower.publisher.last_seq == 3
        nursery.cancel_scope.cancel()
    assert said == [False, True, False]


async def test_seen_and_undecodable_entries_are_counted_never_folded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream()
    stream.add(_entry(1), _entry(2), _entry(3, text='{"type":"event"'), _entry(4))
    follower, _ = _follower(stream)
    follower.publisher.publish_at(2, WHEN, TaskOutput(task_id="a", line="from the store"))
    folded: list[Published] = []
    follower.publisher.add_listener(folded.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await follower.wait_caught_up()
        nursery.cancel_scope.cancel()
    assert [item.seq for item in folded] == [4]
    assert (follower.skipped, follower.undecodable) == (2, 1)


async def test_a_counter_behind_what_was_read_is_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream(counter=1)
    stream.add(_entry(1))
    follower, _ = _follower(stream)
    follower.publisher.publish_at(5, WHEN, TaskOutput(task_id="a", line="before the crash"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert follower.counter_went_back == 1


@attrs.define(eq=False)
class SlowStore:
    backpressure: bool = True
    caught_up: trio.Event = attrs.field(factory=trio.Event)

    async def wait_caught_up(self) -> None:
        await self.caught_up.wait()


async def test_reading_waits_while_the_store_is_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream()
    stream.add(*(_entry(seq) for seq in range(1, 31)))
    store = SlowStore()
    follower, _ = _follower(stream, read_batch=10, recorder=cast(StoreRecorder, store))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await trio.sleep(5)
        assert follower.publisher.last_seq == 10  # one batch, then it waits for the store
        store.backpressure = False
        store.caught_up.set()
        await follower.wait_caught_up()
        assert follower.publisher.last_seq == 30
        nursery.cancel_scope.cancel()


async def test_a_since_past_the_counter_reads_it_again_once_for_those_asking_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream(state_takes=1.0)
    stream.add(*(_entry(seq) for seq in range(1, 4)))
    follower, _ = _follower(stream)
    assert follower.publisher.stream_counter == follower.counter_reaching
    found: list[tuple[int, int | None]] = []

    async def ask(seq: int) -> None:
        found.append((seq, await follower.counter_reaching(seq)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, 3)
        await trio.sleep(0.5)
        # Seq 4 is appended while that read is under way: it cannot tell those who saw 4
        # on another node; one read after it serves them all.
        stream.add(_entry(4))
        for _ in range(3):
            nursery.start_soon(ask, 4)
    assert (found, stream.state_reads) == ([(3, 3), (4, 4), (4, 4), (4, 4)], 2)
    assert await follower.counter_reaching(2) == 4  # known to reach it: no read
    assert stream.state_reads == 2


async def test_an_unreadable_counter_is_none_for_a_since(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream(down=True)
    follower, _ = _follower(stream)
    assert await follower.counter_reaching(1) is None
    stream.down = False
    stream.add(_entry(1))
    assert await follower.counter_reaching(1) == 1


async def test_a_node_behind_publishes_a_since_the_stream_holds_once_it_has_read_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream()
    stream.add(_entry(1), _entry(2))
    follower, _ = _follower(stream)
    publisher = follower.publisher
    reached: list[tuple[float, SeqWait]] = []
    answered = trio.Event()

    async def wait_for(seq: int) -> None:
        outcome = await publisher.wait_for_seq(seq)
        reached.append((trio.current_time(), outcome))
        answered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await follower.wait_caught_up()
        stream.held = True
        stream.add(*(_entry(seq) for seq in range(3, 7)))  # another node has read these
        await trio.sleep(0.5)
        start = trio.current_time()
        nursery.start_soon(wait_for, 5)
        await trio.sleep(3)
        assert reached == []
        assert (publisher.last_seq, follower.lag) == (2, 4)
        stream.held = False
        with trio.fail_after(2):
            await answered.wait()
        nursery.cancel_scope.cancel()
    ((when, outcome),) = reached
    assert outcome == SeqWait(True, 6, 6)
    assert 3 <= when - start <= 4  # answered by the next read, not a timeout


async def test_an_undecodable_last_entry_is_read_through_without_reading_in_a_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream()
    stream.add(_entry(1), _entry(2, text="not json"))
    follower, said = _follower(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await follower.wait_caught_up()
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert (follower.publisher.last_seq, follower.read_through, follower.lag) == (1, 2, 0)
    assert stream.reads <= 12  # about one a second: waiting for new entries
    assert said == [False]


async def test_a_counter_ahead_of_every_entry_does_not_make_reading_a_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = FakeStream(counter=5)  # an append whose INCR landed but not its XADD
    stream.add(_entry(1))
    follower, _ = _follower(stream)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await trio.sleep(10)
        stream.add(_entry(6))
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert follower.publisher.last_seq == 6
    assert stream.reads <= 30
