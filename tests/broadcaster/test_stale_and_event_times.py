"""A cluster serve node's broadcaster: the ``stale`` flag, and durations from event times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import trio
import trio.testing

from broadcaster import SessionAggregate, serve_broadcaster
from events import (
    EventCodec,
    Published,
    RelayPublisher,
    SessionUpdate,
    TaskStarted,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _started(seq: int, at: datetime, task_id: str = "a") -> Published:
    return EventCodec().publish(seq, at, TaskStarted(task_id=task_id))


def test_a_start_read_late_counts_the_duration_from_its_own_time() -> None:
    mono = [500.0]
    aggregate = SessionAggregate(
        "s", clock=lambda: mono[0], wall_clock=lambda: T0 + timedelta(seconds=90)
    )
    aggregate.apply(_started(1, T0))  # read 90 s after it happened
    assert aggregate.duration_seconds() == 90
    mono[0] += 10
    assert aggregate.duration_seconds() == 100
    assert aggregate.snapshot().started_at == T0


def test_two_nodes_reading_the_same_start_at_different_moments_agree() -> None:
    # Node A read it at once, node B 42 s later: both say 60 s at the same instant.
    a = SessionAggregate("s", clock=lambda: 1000.0 + 60, wall_clock=lambda: T0)
    b_mono = {"now": 7.0}
    b = SessionAggregate(
        "s", clock=lambda: b_mono["now"], wall_clock=lambda: T0 + timedelta(seconds=42)
    )
    a_start_mono = 1000.0
    a.clock = lambda: a_start_mono
    a.apply(_started(1, T0))
    b.apply(_started(1, T0))
    a.clock = lambda: a_start_mono + 60
    b_mono["now"] = 7.0 + 18  # 42 + 18 = 60 s after the start
    assert a.duration_seconds() == b.duration_seconds() == 60


def test_without_a_wall_clock_the_duration_counts_from_reading_as_before() -> None:
    aggregate = SessionAggregate("s", clock=lambda: 500.0)
    aggregate.apply(_started(1, T0 - timedelta(hours=1)))
    assert aggregate.duration_seconds() == 0


def test_a_start_stamped_in_the_future_of_this_clock_counts_from_now() -> None:
    aggregate = SessionAggregate("s", clock=lambda: 5.0, wall_clock=lambda: T0)
    aggregate.apply(_started(1, T0 + timedelta(seconds=30)))  # clocks of two hosts differ
    assert aggregate.duration_seconds() == 0


def test_the_stale_flag_is_in_the_snapshot_and_on_the_wire() -> None:
    aggregate = SessionAggregate("s", clock=lambda: 0.0)
    assert aggregate.snapshot().stale is False
    aggregate.stale = True
    snapshot = aggregate.snapshot()
    assert snapshot.stale is True
    frame = json.loads(EventCodec().encode(1, T0, snapshot))
    assert frame["data"]["stale"] is True
    decoded = EventCodec().decode(EventCodec().encode(1, T0, snapshot))
    assert decoded.event == snapshot


def test_a_frame_from_before_the_field_decodes_as_not_stale() -> None:
    frame = EventCodec().to_dict(1, T0, SessionUpdate())
    del frame["data"]["stale"]
    assert EventCodec().from_dict(frame).event.stale is False  # type: ignore[attr-defined]


async def test_becoming_stale_and_current_again_each_sends_an_update_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = RelayPublisher()
    sent: list[Published] = []
    publisher.add_listener(sent.append)
    async with trio.open_nursery() as nursery:
        broadcaster = await nursery.start(serve_broadcaster, publisher)
        broadcaster.set_stale(True)
        broadcaster.set_stale(True)  # no change: nothing more to send
        await trio.testing.wait_all_tasks_blocked()
        broadcaster.set_stale(False)
        await trio.sleep(2 * broadcaster.min_spacing)  # updates are spaced (autojump clock)
        assert broadcaster.updates_sent["stale"] == 2
        nursery.cancel_scope.cancel()
    updates = [item.event for item in sent if isinstance(item.event, SessionUpdate)]
    assert [update.stale for update in updates] == [True, False]
