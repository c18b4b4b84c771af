"""Events: validation, wire form and round-trips."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import (
    EVENT_TYPES,
    MAX_OUTPUT_LINE,
    MAX_OUTPUT_TEXT,
    Event,
    EventCodec,
    EventDecodeError,
    EventValidationError,
    SessionUpdate,
    TaskCompleted,
    TaskOutput,
    TaskQueued,
    TaskStarted,
    TaskUsage,
    format_time,
    parse_time,
)
from events.lowlevel import fast_constructor

NOW = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
COUNT = st.integers(min_value=0, max_value=2**53)
MONEY = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
TEXT = st.text(max_size=40)
TASK_ID = st.text(min_size=1, max_size=40).filter(lambda s: s != "*")
MOMENT = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)


def _field_strategy(cls: type[Event], field: attrs.Attribute[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    hint = hints[field.name]
    if field.name == "task_id":
        return TASK_ID if field.default is attrs.NOTHING else st.just("*")
    if field.name in ("attempt", "records", "concurrency", "previous"):
        return st.integers(min_value=1, max_value=1000)
    if field.name == "line":
        return st.text(max_size=MAX_OUTPUT_LINE)
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    args = set(typing.get_args(hint))
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint)
    strategy: st.SearchStrategy[Any]
    if typing.get_origin(base) is typing.Literal:  # an optional Literal (paused_by)
        strategy = st.sampled_from(typing.get_args(base))
    elif base is bool:
        strategy = st.booleans()
    elif base is int:
        strategy = COUNT if field.name != "priority" else st.integers(-100, 100)
        if field.name == "exit_code":
            strategy = st.integers(-255, 255)
    elif base is float:
        strategy = MONEY
    elif base is datetime:
        strategy = MOMENT
    else:
        strategy = TEXT
    return st.none() | strategy if optional else strategy


@st.composite
def any_event(draw: st.DrawFn) -> Event:
    cls = draw(st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda c: c.event_name)))
    values = {f.name: draw(_field_strategy(cls, f)) for f in attrs.fields(cls)}
    if cls is TaskOutput:
        values["lines"] = values["line"].count("\n") + 1
    if cls is SessionUpdate:
        values["total_tokens"] = sum(
            values[k]
            for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        )
    return cls(**values)


@given(event=any_event(), seq=st.integers(min_value=0, max_value=2**62), moment=MOMENT)
def test_every_event_round_trips_exactly(event: Event, seq: int, moment: datetime) -> None:
    codec = EventCodec()
    published = codec.publish(seq, moment, event)
    decoded = codec.decode(published.wire)
    assert decoded == published
    assert decoded.event == event
    assert type(decoded.event) is type(event)


@given(event=any_event(), seq=st.integers(min_value=0, max_value=2**62), moment=MOMENT)
def test_fast_encoding_is_exactly_json_dumps_of_the_frame(
    event: Event, seq: int, moment: datetime
) -> None:
    codec = EventCodec()
    expected = json.dumps(codec.to_dict(seq, moment, event), separators=(",", ":"))
    assert codec.encode(seq, moment, event) == expected


def test_fast_encoding_escapes_task_ids_and_text() -> None:
    event = TaskOutput(task_id='a"b\\c\u00e9\n', line="\u2028 \x00 caf\u00e9 \U0001f600")
    wire = EventCodec().encode(1, NOW, event)
    assert wire.isascii()
    frame = json.loads(wire)
    assert (frame["task_id"], frame["data"]["line"]) == (event.task_id, event.line)


def test_wire_shape_follows_orc() -> None:
    update = SessionUpdate(
        duration_seconds=61,
        input_tokens=1000,
        output_tokens=300,
        cache_read_tokens=200,
        total_tokens=1500,
        estimated_cost_usd=0.5,
        tasks_running=2,
        is_paused=True,
    )
    frame = json.loads(EventCodec().encode(7, NOW, update))
    assert frame["type"] == "event"
    assert frame["event"] == "session_update"
    assert frame["task_id"] == "*"
    assert frame["seq"] == 7
    assert frame["time"] == "2026-11-22T10:00:00.123456Z"
    data = frame["data"]
    orc_fields = {
        "duration_seconds": int,
        "total_tokens": int,
        "input_tokens": int,
        "output_tokens": int,
        "estimated_cost_usd": float,
        "tasks_running": int,
        "is_paused": bool,
    }
    for name, kind in orc_fields.items():
        assert type(data[name]) is kind, name
    assert data["is_paused"] is True
    assert data["budget_usd"] is None
    assert data["budget_remaining_usd"] is None
    assert "task_id" not in data
    assert all(key == key.lower() for key in data)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: TaskUsage(task_id="a", input_tokens=-1), "input_tokens"),
        (lambda: TaskUsage(task_id="a", output_tokens=True), "output_tokens"),
        (lambda: TaskUsage(task_id="a", cost_usd=float("nan")), "cost_usd"),
        (lambda: TaskUsage(task_id="a", cost_source="guessed"), "cost_source"),  # type: ignore[arg-type]
        (lambda: TaskUsage(task_id="*"), "task_id"),
        (lambda: TaskUsage(task_id=""), "task_id"),
        (lambda: TaskOutput(task_id="a", line="x" * (MAX_OUTPUT_TEXT + 1)), "line"),
        (lambda: TaskOutput(task_id="a", line="one\ntwo"), "lines"),
        (lambda: TaskOutput(task_id="a", line="one", lines=0), "lines"),
        (lambda: SessionUpdate(task_id="t1"), "task_id"),
        (lambda: SessionUpdate(input_tokens=5, total_tokens=4), "total_tokens"),
        (lambda: SessionUpdate(started_at=datetime(2026, 1, 1)), "started_at"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(EventValidationError, match=field):
        build()


def _frame(**overrides: Any) -> str:
    frame: dict[str, Any] = {
        "type": "event",
        "event": "task_usage",
        "task_id": "t1",
        "seq": 3,
        "time": "2026-11-22T10:00:00Z",
        "data": {"model": "m", "input_tokens": 5},
    }
    frame.update(overrides)
    return json.dumps(frame)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (_frame(type="subscribed"), "type"),
        (_frame(event="task_exploded"), "unknown event name 'task_exploded'"),
        (_frame(seq="3"), "seq"),
        (_frame(seq=-1), "seq"),
        (_frame(time="yesterday"), "time"),
        (_frame(time="2026-11-22T10:00:00"), "time"),
        (_frame(task_id=5), "task_id"),
        (_frame(data=[]), "task_usage.data"),
        (_frame(data={"input_tokens": "5"}), "task_usage.data.input_tokens"),
        (_frame(data={"input_tokens": 5.0}), "task_usage.data.input_tokens"),
        (_frame(data={"input_tokens": -5}), "input_tokens must be >= 0"),
        (_frame(data={"cost_usd": "1"}), "task_usage.data.cost_usd"),
        (_frame(data={"records": 0}), "records must be >= 1"),
        (_frame(data={"records": True}), "task_usage.data.records"),
        (_frame(data={"surprise": 1}), "surprise"),
        (_frame(event="session_update", task_id="*", data={"is_paused": 1}), "is_paused"),
    ],
)
def test_decode_errors_name_what_was_wrong(text: str, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message.replace(".", r"\.")):
        EventCodec().decode(text)


def test_integer_cost_decodes_as_float() -> None:
    published = EventCodec().decode(_frame(data={"cost_usd": 1}))
    assert isinstance(published.event, TaskUsage)
    assert published.event.cost_usd == 1.0
    assert isinstance(published.event.cost_usd, float)


def test_usage_total_counts_every_kind() -> None:
    usage = TaskUsage(
        task_id="a", input_tokens=1, output_tokens=2, cache_read_tokens=3, cache_write_tokens=4
    )
    assert usage.total_tokens == 10


def test_usage_without_records_field_reads_as_one_record() -> None:
    # Frames written before ``records`` existed (stored history, older servers).
    old = EventCodec().decode(_frame())
    assert isinstance(old.event, TaskUsage)
    assert old.event.records == 1
    coalesced = EventCodec().decode(_frame(data={"model": "m", "input_tokens": 9, "records": 3}))
    assert isinstance(coalesced.event, TaskUsage)
    assert coalesced.event.records == 3
    assert json.loads(coalesced.wire)["data"]["records"] == 3


def test_format_time_is_rfc3339_utc_with_microseconds() -> None:
    east = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.000006Z"
    )
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=east)) == (
        "2026-01-02T01:04:05.000000Z"
    )
    assert parse_time(format_time(NOW)) == NOW


def _fields(event: Event) -> dict[str, Any]:
    return {field.name: getattr(event, field.name) for field in attrs.fields(type(event))}


@given(event=any_event())
def test_fast_constructors_build_what_the_class_builds(event: Event) -> None:
    built = fast_constructor(type(event))(**_fields(event))
    assert type(built) is type(event)
    assert built == event
    assert _fields(built) == _fields(event)


@pytest.mark.parametrize(
    ("cls", "values", "field"),
    [
        (TaskQueued, {"task_id": "*", "name": "", "attempt": 1, "priority": 0}, "task_id"),
        (TaskQueued, {"task_id": "t", "name": 5, "attempt": 1, "priority": 0}, "name"),
        (TaskStarted, {"task_id": "t", "name": "", "attempt": 0}, "attempt"),
        (
            TaskCompleted,
            {"task_id": "t", "attempt": 1, "duration_seconds": -1.0, "exit_code": None},
            "duration_seconds",
        ),
        (
            TaskCompleted,
            {"task_id": "t", "attempt": 1, "duration_seconds": 0.5, "exit_code": "0"},
            "exit_code",
        ),
    ],
)
def test_fast_constructors_refuse_what_the_class_refuses(
    cls: type[Event], values: dict[str, Any], field: str
) -> None:
    with pytest.raises(EventValidationError, match=field):
        fast_constructor(cls)(**values)
    with pytest.raises(EventValidationError, match=field):
        cls(**values)


def test_a_fast_constructor_accepts_what_only_the_slow_checks_accept() -> None:
    # An int in a float field fails the inline test and passes the field's check.
    made = fast_constructor(TaskCompleted)(task_id="t", attempt=1, duration_seconds=2, exit_code=0)
    assert made == TaskCompleted(task_id="t", attempt=1, duration_seconds=2, exit_code=0)


def test_a_fast_constructor_runs_the_class_s_own_check() -> None:
    with pytest.raises(EventValidationError, match="total_tokens"):
        fast_constructor(SessionUpdate)(**{**_fields(SessionUpdate()), "total_tokens": 1})


def test_published_is_built_with_its_event() -> None:
    item = EventCodec().publish(7, NOW, TaskQueued(task_id="t"))
    assert item.event == TaskQueued(task_id="t")
    assert (item.seq, item.time, item.event_name, item.task_id) == (7, NOW, "task_queued", "t")
