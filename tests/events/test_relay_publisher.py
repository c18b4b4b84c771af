"""RelayPublisher: events keep the seq and time they were given; snapshots take none."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from events import (
    EventCodec,
    Gap,
    Published,
    RelayPublisher,
    SessionUpdate,
    TaskOutput,
    TaskStarted,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _line(n: int) -> TaskOutput:
    return TaskOutput(task_id="a", line=f"line {n}")


def test_an_event_keeps_the_given_seq_and_time_on_the_wire() -> None:
    publisher = RelayPublisher()
    everything = publisher.subscribe("*")
    item = publisher.publish_at(7, WHEN, TaskStarted(task_id="a", attempt=2))
    assert item is not None
    assert (item.seq, item.time) == (7, WHEN)
    frame = json.loads(item.wire)
    assert (frame["seq"], frame["time"]) == (7, "2026-01-02T03:04:05.678901Z")
    assert publisher.last_seq == 7
    assert [i.seq for i in everything.drain() if isinstance(i, Published)] == [7]
    # The same bytes a single process would send for that event at that seq and time.
    assert item.wire == EventCodec().encode(7, WHEN, TaskStarted(task_id="a", attempt=2))


def test_listeners_see_each_event_once_in_order() -> None:
    publisher = RelayPublisher()
    seen: list[int] = []
    publisher.add_listener(lambda item: seen.append(item.seq))
    for seq in (1, 2, 3):
        publisher.publish_at(seq, WHEN, _line(seq))
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("seq", [0, 3, -1])
def test_a_seq_not_past_the_last_one_is_refused_naming_it(seq: int) -> None:
    publisher = RelayPublisher()
    publisher.publish_at(3, WHEN, _line(3))
    with pytest.raises(ValueError, match=rf"seq must be an int > last_seq \(3\), got {seq}"):
        publisher.publish_at(seq, WHEN, _line(0))
    assert publisher.last_seq == 3
    assert publisher.published_total == 1


def test_a_snapshot_carries_the_last_events_seq_and_takes_none() -> None:
    publisher = RelayPublisher()
    everything = publisher.subscribe("*")
    publisher.publish_at(1, WHEN, _line(1))
    update = publisher.publish(SessionUpdate(tasks_running=1))
    assert update is not None
    assert update.seq == 1
    publisher.publish_at(2, WHEN, _line(2))  # the next stream event still gets 2
    direct = publisher.deliver_to(everything, SessionUpdate())
    assert direct is not None
    assert direct.seq == 2
    assert publisher.last_seq == 2
    items = [i for i in everything.drain() if isinstance(i, Published)]
    assert [(i.event.event_name, i.seq) for i in items] == [
        ("task_output", 1),
        ("session_update", 1),
        ("task_output", 2),
        ("session_update", 2),
    ]


def test_events_go_through_publish_at_only_and_snapshots_through_publish() -> None:
    publisher = RelayPublisher()
    with pytest.raises(TypeError, match="task_output events through publish_at"):
        publisher.publish(_line(1))
    with pytest.raises(ValueError, match="publish a session_update"):
        publisher.publish_at(1, WHEN, SessionUpdate())
    assert publisher.last_seq == 0


def test_a_replay_across_the_streams_seqs_is_exact_and_snapshots_are_not_replayed() -> None:
    publisher = RelayPublisher()
    for seq in range(1, 6):
        publisher.publish_at(seq, WHEN, _line(seq))
        publisher.publish(SessionUpdate())
    replay = publisher.subscribe("*", since=2)
    assert [i.seq for i in replay.drain() if isinstance(i, Published)] == [3, 4, 5]


def test_a_jump_in_the_seqs_is_a_history_gap_for_replays_from_before_it() -> None:
    # Entries 3..9 were trimmed from the stream before this node read them.
    publisher = RelayPublisher()
    publisher.publish_at(1, WHEN, _line(1))
    publisher.publish_at(2, WHEN, _line(2))
    publisher.publish_at(10, WHEN, _line(10))
    replay = publisher.subscribe("*", since=1)
    items = list(replay.drain())
    assert items[0] == Gap("*", 2, 9, None, "history")
    assert [i.seq for i in items[1:] if isinstance(i, Published)] == [10]
    # From after the jump, nothing is missing.
    after = publisher.subscribe("*", since=9)
    assert [i.seq for i in after.drain() if isinstance(i, Published)] == [10]


def test_a_node_starting_past_a_trimmed_start_says_so_to_replays_from_zero() -> None:
    publisher = RelayPublisher()
    publisher.publish_at(501, WHEN, _line(501))
    items = list(publisher.subscribe("*", since=0).drain())
    assert items[0] == Gap("*", 1, 500, None, "history")


def test_closed_publishes_nothing() -> None:
    publisher = RelayPublisher()
    publisher.close()
    assert publisher.publish_at(1, WHEN, _line(1)) is None
    assert publisher.publish(SessionUpdate()) is None
