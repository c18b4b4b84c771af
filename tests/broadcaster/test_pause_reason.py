"""``session_update``'s ``paused_by`` and ``pause_reason``: kept from the pause events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from broadcaster import SessionAggregate
from events import (
    EventCodec,
    EventDecodeError,
    ExecutorPaused,
    ExecutorResumed,
    Published,
    Publisher,
    SessionUpdate,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def fed(aggregate: SessionAggregate) -> Publisher:
    publisher = Publisher(clock=lambda: T0)

    def listener(item: Published) -> None:
        aggregate.apply(item)

    publisher.add_listener(listener)
    return publisher


def test_a_pause_says_who_and_why_until_resume() -> None:
    aggregate = SessionAggregate("s", clock=lambda: 0.0)
    publisher = fed(aggregate)
    before = aggregate.snapshot()
    assert (before.paused_by, before.pause_reason) == (None, None)
    reason = "budget exhausted: spent $1.0100 of $1.0000"
    publisher.publish(ExecutorPaused(by="budget", reason=reason))
    paused = aggregate.snapshot()
    assert (paused.is_paused, paused.paused_by, paused.pause_reason) == (True, "budget", reason)
    publisher.publish(ExecutorResumed(by="operator", reason="raised"))
    resumed = aggregate.snapshot()
    assert (resumed.is_paused, resumed.paused_by, resumed.pause_reason) == (False, None, None)
    publisher.publish(ExecutorPaused(by="system", reason="the store is falling behind"))
    assert aggregate.snapshot().paused_by == "system"


def test_restore_keeps_who_paused_a_stored_session() -> None:
    aggregate = SessionAggregate("s", clock=lambda: 0.0)
    aggregate.restore(
        SessionUpdate(session_id="s", is_paused=True, paused_by="operator", pause_reason="review")
    )
    snapshot = aggregate.snapshot()
    assert (snapshot.paused_by, snapshot.pause_reason) == ("operator", "review")


def _frame(data: dict[str, object]) -> str:
    return json.dumps(
        {
            "type": "event",
            "event": "session_update",
            "task_id": "*",
            "seq": 3,
            "time": "2026-11-22T10:00:00.000000Z",
            "data": data,
        }
    )


def test_old_frames_without_the_fields_decode_and_new_ones_round_trip() -> None:
    codec = EventCodec()
    old = codec.decode(_frame({"is_paused": True})).event
    assert isinstance(old, SessionUpdate)
    assert (old.is_paused, old.paused_by, old.pause_reason) == (True, None, None)
    update = SessionUpdate(is_paused=True, paused_by="budget", pause_reason="budget $1.00")
    wire = codec.publish(4, T0, update).wire
    assert '"paused_by":"budget","pause_reason":"budget $1.00"' in wire
    assert codec.decode(wire).event == update


def test_an_unknown_paused_by_is_refused_naming_the_field() -> None:
    with pytest.raises(
        EventDecodeError, match=r"gremlins not in .* session_update\.data\.paused_by"
    ):
        EventCodec().decode(_frame({"paused_by": "gremlins"}))
