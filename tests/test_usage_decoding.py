"""The msgspec-typed reading of Claude Code turns agrees with the json.loads reading.

``UsageParser(typed_decode=False)`` reads every line with ``json.loads`` (the
parser as it was before msgspec): both parsers get the same generated lines,
valid or not, and must give the same records line by line.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from executor import TokenCounts, UsageParser, UsageRecord

COUNT_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


class Raw(str):
    """JSON text put into a line as is (a number json.dumps will not write, a bad token)."""


class Obj(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs, so a key can repeat."""


def render(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{render(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(item) for item in value) + "]"
    return json.dumps(value)  # NaN and Infinity written as such, lone surrogates escaped


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(st.tuples(st.sampled_from(["a", "usage", "type", "id"]), inner), max_size=3).map(
            Obj
        )
    ),
    max_leaves=8,
)
BAD_VALUES = [b"NaN", b"Infinity", b"-Infinity", b'"\\ud800"', b'"\\udc00x"', b"9" * 4_301]
odd_count = (
    st.integers(-5, 2**80)
    | st.sampled_from([None, True, 1.0, 2.5, "7", math.nan, math.inf])
    | st.integers(4_299, 4_310).map(lambda digits: Raw("9" * digits))
)
counts = st.one_of(*[st.integers(0, 2_000)] * 12, odd_count)
small_text = st.sampled_from(["msg_1", "msg_2", "msg_1", "", "claude-sonnet-4-5"])


@st.composite
def usage_objects(draw: st.DrawFn) -> Obj:
    keys = draw(st.lists(st.sampled_from([*COUNT_KEYS, "service_tier"]), max_size=6))
    return Obj((key, draw(counts if key != "service_tier" else junk)) for key in keys)


@st.composite
def messages(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 19)) == 0:
        return draw(junk)  # not an object
    fields = Obj()
    for key in draw(st.permutations(["id", "model", "usage", "content", "type"])):
        if key == "usage":
            fields.append((key, draw(usage_objects())))
        elif draw(st.integers(0, 3)):
            fields.append((key, draw(st.one_of(*[small_text] * 6, junk))))
    if draw(st.integers(0, 4)) == 0:
        fields.append(("usage", draw(usage_objects())))  # a duplicate: the last one counts
    return fields


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = st.sampled_from(["assistant"] * 12 + ["result", "user"])
    fields = Obj([("type", draw(st.one_of(*[kind] * 6, junk))), ("message", draw(messages()))])
    if draw(st.integers(0, 3)) == 0:
        fields.append((draw(st.sampled_from(["type", "junk", "usage"])), draw(junk)))
    draw(st.randoms()).shuffle(fields)
    text = render(fields).encode()
    how = draw(st.integers(0, 9))
    if how == 0:  # cut somewhere
        text = text[: draw(st.integers(0, len(text)))]
    elif how == 1:  # a stray byte, maybe not UTF-8
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=2)) + text[at:]
    elif how == 2:
        text = draw(st.sampled_from([b" ", b"\t", b"\x0c", b"\xef\xbb\xbf"])) + text + b"\r"
    elif how == 3:  # a value msgspec refuses and json.loads takes, or the reverse
        at = text.index(b"{", 1) + 1 if b"{" in text[1:] else 1
        bad = draw(st.sampled_from(BAD_VALUES))
        text = (
            text[:at] + b'"junk":' + bad + (b"," if text[at : at + 1] != b"}" else b"") + text[at:]
        )
    return text


def both(batch: list[bytes]) -> tuple[list[object], list[object]]:
    typed, reference = UsageParser(), UsageParser(typed_decode=False)
    return [typed.parse(line) for line in batch], [reference.parse(line) for line in batch]


@contextmanager
def any_number_of_digits() -> Iterator[None]:
    """Lift Python's int-string limit, the one case where the two readings differ on purpose."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(limit)


@settings(max_examples=300, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=12))
def test_typed_and_json_parsers_agree_line_by_line(batch: list[bytes]) -> None:
    with any_number_of_digits():
        typed, reference = both(batch)
    assert typed == reference


@settings(max_examples=60, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=12))
def test_text_and_bytes_lines_give_the_same_records(batch: list[bytes]) -> None:
    as_bytes, as_text = UsageParser(), UsageParser()
    for raw in batch:
        assert as_bytes.parse(raw) == as_text.parse(raw.decode("utf-8", "replace"))


def turn(msg_id: str, usage: str, extra: str = "") -> bytes:
    return (
        f'{{"type":"assistant",{extra}"message":{{"id":"{msg_id}","model":"claude-sonnet-4-5",'
        f'"content":[{{"type":"text","text":"hi"}}],"usage":{usage}}}}}'
    ).encode()


def test_duplicate_keys_take_the_last_value_as_json_loads_does() -> None:
    line = turn("m1", '{"input_tokens":1,"input_tokens":5,"output_tokens":2}')
    typed, reference = both([line, b'{"type":"user","type":"assistant",' + line[1:]])
    assert typed == reference == [[UsageRecord(TokenCounts(5, 2), model="claude-sonnet-4-5")], []]


def test_nan_infinity_and_lone_surrogates_are_read_as_json_loads_reads_them() -> None:
    # msgspec refuses these; the line then goes the json.loads way.
    batch = [
        turn("m1", '{"input_tokens":3}', extra='"junk":NaN,'),
        turn("m2", '{"input_tokens":3}', extra='"junk":"\\ud800",'),
        turn("m3", '{"input_tokens":Infinity}'),
        turn("m4", '{"input_tokens":-Infinity,"output_tokens":1}'),
    ]
    typed, reference = both(batch)
    counted = [UsageRecord(TokenCounts(3), model="claude-sonnet-4-5")]
    assert typed == reference == [counted, counted, None, None]


def test_huge_counts_stay_exact() -> None:
    big = 2**64 + 1
    typed, reference = both([turn("m1", f'{{"output_tokens":{big}}}')])
    assert typed == reference == [[UsageRecord(TokenCounts(output=big), model="claude-sonnet-4-5")]]


def test_json_nested_too_deep_is_output_not_a_crash() -> None:
    # json.loads raised RecursionError out of the reader before.
    deep = turn("m1", '{"input_tokens":1}', extra='"junk":' + "[" * 100_000 + "]" * 100_000 + ",")
    nested_usage = b'{"usage":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    typed, reference = both([deep, nested_usage])
    assert typed == reference == [None, None]


def test_a_number_past_pythons_digit_limit_in_a_field_not_read_no_longer_hides_the_turn() -> None:
    # json.loads refuses ints of more than 4,300 digits anywhere in the line; msgspec
    # skips the field.  Where the number is a count, both refuse the line.
    skipped = turn("m1", '{"input_tokens":4}', extra=f'"junk":{"9" * 5_000},')
    counted = turn("m2", f'{{"input_tokens":{"9" * 5_000}}}')
    typed, reference = both([skipped, counted])
    assert typed == [[UsageRecord(TokenCounts(4), model="claude-sonnet-4-5")], None]
    assert reference == [None, None]


def fields_of(line: bytes) -> dict[str, Any]:
    message = json.loads(line)["message"]
    return {key: message[key] for key in ("id", "model", "usage")}


def test_every_content_block_of_a_turn_counts_once() -> None:
    usage = '{"input_tokens":3,"cache_read_input_tokens":100,"output_tokens":9}'
    first, second = turn("m1", usage), turn("m1", usage)
    assert fields_of(first) == fields_of(second)
    parser = UsageParser()
    assert parser.parse(first) == [
        UsageRecord(TokenCounts(3, 9, cache_read=100), model="claude-sonnet-4-5")
    ]
    assert parser.parse(second) == []
    assert parser.lines_parsed == 2
