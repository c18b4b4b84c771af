"""The JSON wire form of events, shaped like orc's WebSocket event frames.

``{"type": "event", "event": name, "task_id": id, "seq": n, "time": rfc3339, "data": {...}}``
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import attrs
import cattrs

from ._exceptions import EventDecodeError, EventValidationError
from ._models import EVENT_TYPES, Event
from ._rules import fast_constructor
from ._times import format_time, parse_time
from ._writers import Writer, encode_str, writer_for


def _strict_int(value: object, _type: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected int, got {type(value).__name__}")
    return value


def _strict_float(value: object, _type: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("expected a finite number")
    return result


def _strict_bool(value: object, _type: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected bool, got {type(value).__name__}")
    return value


def _strict_str(value: object, _type: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected string, got {type(value).__name__}")
    return value


def make_converter() -> cattrs.Converter:
    """The converter for every event; strict about JSON types, never coercing."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(datetime, lambda value, _t: parse_time(value))
    converter.register_unstructure_hook(datetime, format_time)
    return converter


@attrs.frozen
class Published:
    """An event as the publisher sent it: numbered, stamped, encoded once."""

    seq: int
    time: datetime
    event: Event
    wire: str = attrs.field(eq=False, repr=False)

    @property
    def event_name(self) -> str:
        return self.event.event_name

    @property
    def task_id(self) -> str:
        return self.event.task_id


# Every event published builds one: without attrs' per-field setattr calls.
_published = fast_constructor(Published)


@attrs.frozen
class Gap:
    """What a subscriber missed: events ``first_seq..last_seq`` of its topic.

    ``reason`` is ``"overflow"`` (its buffer was full; ``missed`` is exact) or
    ``"history"`` (the replay it asked for is no longer kept; ``missed`` is None).
    """

    topic: str
    first_seq: int
    last_seq: int
    missed: int | None
    reason: Literal["overflow", "history"]

    @property
    def wire(self) -> str:
        return json.dumps(
            {
                "type": "gap",
                "task_id": self.topic,
                "first_seq": self.first_seq,
                "last_seq": self.last_seq,
                "missed": self.missed,
                "reason": self.reason,
            },
            separators=(",", ":"),
        )


def _describe_error(exc: BaseException, type_: object) -> str:
    if isinstance(exc, EventValidationError):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)  # type: ignore[arg-type]


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _make_encoder() -> Callable[[Any], str]:
    """A compact JSON encoder built once, giving what ``json.dumps(separators=...)`` gives.

    ``json.dumps`` and ``JSONEncoder.encode`` build the C encoder anew on every
    call; every event is encoded, so the C encoder is built here once (without
    the circular-reference check: event data is a tree of plain values).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (e.g. another interpreter)
        return json.JSONEncoder(separators=(",", ":")).encode
    iterencode = make(
        None,
        _not_serializable,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )  # markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return encode


# The frame around an event's data, in to_dict's key order; the time is its
# second's text (cached) followed by the microseconds.
_FRAME = '{"type":"event","event":"%s","task_id":%s,"seq":%d,"time":"%s%06dZ","data":%s}'
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_FAR_PAST = datetime.min.replace(tzinfo=UTC)


def _second_of(moment: datetime) -> tuple[datetime, datetime, str]:
    """The second ``moment`` (UTC) is in: its start, the next one's, its text up to the dot."""
    start = moment.replace(microsecond=0)
    try:
        end = start + timedelta(seconds=1)
    except OverflowError:  # the last second of year 9999
        end = _FAR_FUTURE
    text = "%04d-%02d-%02dT%02d:%02d:%02d." % (  # noqa: UP031 (fastest here)
        start.year,
        start.month,
        start.day,
        start.hour,
        start.minute,
        start.second,
    )
    return start, end, text


@attrs.define
class EventCodec:
    """Encodes and decodes wire frames with one converter."""

    converter: cattrs.Converter = attrs.field(factory=make_converter)
    _encode_json: Callable[[Any], str] = attrs.field(factory=_make_encoder, init=False, repr=False)
    _writers: dict[type[Event], Writer] = attrs.field(init=False, repr=False)
    # The second last written: its start, the next second's start, its text.
    # Swapped as one tuple, so a reader in another thread sees a matching trio.
    _second: tuple[datetime, datetime, str] = attrs.field(
        init=False, default=(_FAR_FUTURE, _FAR_PAST, ""), repr=False
    )

    def __attrs_post_init__(self) -> None:
        self._writers = {cls: writer_for(cls) for cls in EVENT_TYPES.values()}

    def to_dict(self, seq: int, time: datetime, event: Event) -> dict[str, Any]:
        data = self.converter.unstructure(event)
        del data["task_id"]
        return {
            "type": "event",
            "event": event.event_name,
            "task_id": event.task_id,
            "seq": seq,
            "time": format_time(time),
            "data": data,
        }

    def encode(self, seq: int, time: datetime, event: Event) -> str:
        """``to_dict`` as compact JSON, byte for byte what ``json.dumps`` gives.

        Every event is encoded, so each event class has a writer generated
        once (see ``_writers``) and the time's text up to the second is cached.
        """
        if time.tzinfo is not UTC:
            time = time.astimezone(UTC)  # a naive one is taken as local time
        start, end, second = self._second
        if not start <= time < end:
            start, end, second = self._second = _second_of(time)
        write = self._writers.get(type(event))
        if write is not None:
            text = write(event, seq, second, time.microsecond)
            if text is not None:
                return text
        return _FRAME % (
            event.event_name,
            encode_str(event.task_id),
            seq,
            second,
            time.microsecond,
            self._encode_generic(event),
        )

    def _encode_generic(self, event: Event) -> str:
        data = self.converter.unstructure(event)
        del data["task_id"]
        return self._encode_json(data)

    def publish(self, seq: int, time: datetime, event: Event) -> Published:
        return _published(seq=seq, time=time, event=event, wire=self.encode(seq, time, event))

    def decode(self, text: str | bytes) -> Published:
        try:
            frame = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventDecodeError(f"not JSON: {exc}") from exc
        return self.from_dict(frame, wire=text if isinstance(text, str) else text.decode())

    def from_dict(self, frame: object, *, wire: str | None = None) -> Published:
        if not isinstance(frame, dict):
            raise EventDecodeError("frame must be a JSON object")
        if frame.get("type") != "event":
            raise EventDecodeError(f"type: expected 'event', got {frame.get('type')!r}")
        name = frame.get("event")
        cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise EventDecodeError(f"event: unknown event name {name!r}")
        seq = frame.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise EventDecodeError(f"seq: expected a non-negative int, got {seq!r}")
        try:
            time = parse_time(frame.get("time"))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise EventDecodeError(f"time: {exc}") from exc
        task_id = frame.get("task_id")
        if not isinstance(task_id, str):
            raise EventDecodeError(f"task_id: expected string, got {task_id!r}")
        data = frame.get("data")
        if not isinstance(data, dict):
            raise EventDecodeError(f"{name}.data: expected an object, got {data!r}")
        event = self._structure(cls, {**data, "task_id": task_id})
        if wire is None:
            wire = self.encode(seq, time, event)
        return Published(seq=seq, time=time, event=event, wire=wire)

    def _structure(self, cls: type[Event], data: dict[str, Any]) -> Event:
        name = cls.event_name
        try:
            return self.converter.structure(data, cls)
        except cattrs.BaseValidationError as exc:
            messages = cattrs.transform_error(
                exc, path=f"{name}.data", format_exception=_describe_error
            )
            raise EventDecodeError("; ".join(messages)) from exc
        except (TypeError, ValueError) as exc:
            raise EventDecodeError(f"{name}.data: {exc}") from exc
