"""The msgspec-typed reading of Claude Code turns agrees with the json.loads reading.

``UsageParser(typed_decode=False)`` reads every line with ``json.loads`` (the
parser as it was before msgspec): both parsers get the same generated lines,
valid or not, and must give the same records line by line.
"""

from __future__ import annotations

import json
from typing import Any

from _usage_support import any_number_of_digits, lines
from hypothesis import given, settings
from hypothesis import strategies as st

from events import MAX_RECORD_TOKENS
from executor import TokenCounts, UsageParser, UsageRecord


def both(
    batch: list[bytes], refused: tuple[list[str], list[str]] | None = None
) -> tuple[list[object], list[object]]:
    """Each parser's records line by line; ``refused`` gets each one's refusals."""
    typed_refused, reference_refused = refused or ([], [])
    typed = UsageParser(on_refused=typed_refused.append)
    reference = UsageParser(typed_decode=False, on_refused=reference_refused.append)
    return [typed.parse(line) for line in batch], [reference.parse(line) for line in batch]


@settings(max_examples=300, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=12))
def test_typed_and_json_parsers_agree_line_by_line(batch: list[bytes]) -> None:
    refused: tuple[list[str], list[str]] = ([], [])
    with any_number_of_digits():
        typed, reference = both(batch, refused)
    assert typed == reference
    assert refused[0] == refused[1]


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


def test_a_count_up_to_the_bound_is_exact_and_one_beyond_it_refused_by_both() -> None:
    # Issue 17: counts of 2**63 and more crashed the store; past the bound a
    # record is refused (its line stays output), by the typed reading as by json.loads.
    at_bound = turn("m1", f'{{"output_tokens":{MAX_RECORD_TOKENS}}}')
    beyond = [
        turn(f"m{n}", f'{{"output_tokens":{big}}}')
        for n, big in enumerate((MAX_RECORD_TOKENS + 1, 2**63, 2**64 + 1), start=2)
    ]
    refused: tuple[list[str], list[str]] = ([], [])
    typed, reference = both([at_bound, *beyond], refused)
    counted = UsageRecord(TokenCounts(output=MAX_RECORD_TOKENS), model="claude-sonnet-4-5")
    assert typed == reference == [[counted], None, None, None]
    assert refused[0] == refused[1]
    assert refused[0][1] == "output_tokens = 9223372036854775808 is not in 0..1,000,000,000,000"


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
