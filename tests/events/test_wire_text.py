"""The per-class encoding plans and the cached second give exactly ``json.dumps``'s text."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime, timedelta, timezone

from events import EventCodec, SessionUpdate, TaskQueued, TaskStarted

START = datetime(2026, 11, 22, 23, 59, 58, 999_998, tzinfo=UTC)


def _dumped(codec: EventCodec, seq: int, moment: datetime, event: object) -> str:
    frame = codec.to_dict(seq, moment, event)  # type: ignore[arg-type]
    return json.dumps(frame, separators=(",", ":"))


def test_one_codec_across_seconds_days_and_zones_writes_every_time_right() -> None:
    codec = EventCodec()
    event = TaskStarted(task_id="a", name="n")
    moments = [START + timedelta(microseconds=step) for step in range(0, 6)]
    moments += [START + timedelta(seconds=2), START]  # forward a day, then back
    moments += [START.astimezone(timezone(timedelta(hours=5))), START.replace(microsecond=0)]
    for seq, moment in enumerate(moments):
        assert codec.encode(seq, moment, event) == _dumped(codec, seq, moment, event)
    assert '"time":"2026-11-23T00:00:00.999998Z"' in codec.encode(0, moments[6], event)


class Level(enum.IntEnum):
    HIGH = 7


def test_values_outside_the_plan_take_the_generic_encoder() -> None:
    codec = EventCodec()
    queued = TaskQueued(task_id="a", priority=Level.HIGH)
    assert codec.encode(1, START, queued) == _dumped(codec, 1, START, queued)
    assert '"priority":7' in codec.encode(1, START, queued)
    update = SessionUpdate(started_at=START.astimezone(timezone(timedelta(hours=-3))))
    assert codec.encode(2, START, update) == _dumped(codec, 2, START, update)
