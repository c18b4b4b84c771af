"""The generated per-class checks refuse exactly what the fields' rules refuse."""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from events import EVENT_TYPES, Event, EventCodec, EventValidationError, SessionUpdate
from events._rules import rules_of


class Level(enum.IntEnum):
    HIGH = 7


class Name(str):
    pass


class Money(float):
    pass


ODD_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    2**70,
    Level.HIGH,
    0.0,
    -0.0,
    1.5,
    -1.5,
    Money(2.5),
    math.nan,
    math.inf,
    -math.inf,
    "",
    "*",
    "x",
    "one\ntwo",
    Name("named"),
    "y" * 257,
    "z" * 5000,
    "stdout",
    "computed",
    "operator",
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1),
    b"bytes",
    object(),
]
NOW = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
SESSION_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _valid(cls: type[Event]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in attrs.fields(cls):
        if attribute.default is attrs.NOTHING:
            values[attribute.name] = {"task_id": "t1", "line": "out"}.get(attribute.name, 1.0)
    return values


def _slow_verdict(cls: type[Event], values: dict[str, Any], name: str) -> BaseException | None:
    """What the field's own check says of ``values[name]`` (the others being valid)."""
    holder = type("Holder", (), values)()
    for attribute, rule in rules_of(cls):
        if attribute.name == name:
            try:
                rule.slow(holder, attribute, values[name])
            except (EventValidationError, TypeError) as exc:
                return exc
    return None


CASES = [
    (cls, attribute.name, value)
    for cls in EVENT_TYPES.values()
    for attribute, _ in rules_of(cls)
    for value in ODD_VALUES
    if not (cls is SessionUpdate and attribute.name in (*SESSION_TOKENS, "total_tokens"))
]


@pytest.mark.parametrize(("cls", "name", "value"), CASES)
def test_a_value_is_refused_exactly_when_its_rule_refuses_it(
    cls: type[Event], name: str, value: object
) -> None:
    values = _valid(cls)
    values[name] = value
    if name == "line" and isinstance(value, str):
        values["lines"] = value.count("\n") + 1  # keep the other field valid
    expected = _slow_verdict(cls, values, name)
    if expected is None:
        event = cls(**values)
        assert getattr(event, name) is value
        # ... and its generated writer, or the converter it leaves odd values to,
        # writes exactly what json.dumps gives.
        codec = EventCodec()
        expected_wire = json.dumps(codec.to_dict(5, NOW, event), separators=(",", ":"))
        assert codec.encode(5, NOW, event) == expected_wire
    else:
        with pytest.raises(type(expected)) as raised:
            cls(**values)
        assert str(raised.value) == str(expected)
        if isinstance(expected, EventValidationError):
            assert name in str(raised.value)


def test_the_first_bad_field_in_field_order_is_named() -> None:
    from events import TaskUsage

    with pytest.raises(EventValidationError, match=r"^input_tokens"):
        TaskUsage(task_id="a", input_tokens=-1, records=0, cost_usd=-2.0)


def test_session_update_still_checks_its_total_after_the_fields() -> None:
    with pytest.raises(EventValidationError, match="total_tokens must equal"):
        SessionUpdate(input_tokens=2, cache_write_tokens=3, total_tokens=4)
    assert SessionUpdate(input_tokens=2, cache_write_tokens=3, total_tokens=5).total_tokens == 5


def test_evolve_checks_again() -> None:
    from events import TaskStarted

    started = TaskStarted(task_id="a")
    with pytest.raises(EventValidationError, match="attempt"):
        attrs.evolve(started, attempt=0)
