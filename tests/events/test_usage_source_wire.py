"""Issue 19: ``TaskUsage.source`` (the output format usage was read from) is additive:
frames without it decode (as ""), frames with it round-trip, a bad one is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from events import EventCodec, EventDecodeError, TaskUsage


def _frame(data: dict[str, object]) -> str:
    return json.dumps(
        {
            "type": "event",
            "event": "task_usage",
            "task_id": "t1",
            "seq": 3,
            "time": "2026-11-22T10:00:00Z",
            "data": data,
        }
    )


def test_an_old_frame_without_source_decodes() -> None:
    event = EventCodec().decode(_frame({"model": "m", "input_tokens": 5})).event
    assert isinstance(event, TaskUsage)
    assert (event.source, event.input_tokens) == ("", 5)


def test_a_source_round_trips() -> None:
    codec = EventCodec()
    event = TaskUsage(task_id="t1", model="m", output_tokens=2, source="codex-exec")
    wire = codec.encode(1, datetime(2026, 11, 22, tzinfo=UTC), event)
    assert json.loads(wire)["data"]["source"] == "codex-exec"
    assert codec.decode(wire).event == event


def test_a_source_that_is_not_text_is_refused() -> None:
    with pytest.raises(EventDecodeError, match="source"):
        EventCodec().decode(_frame({"model": "m", "source": 7}))
