"""The stdout reader: which lines it parses, and that its fast path reads what the parser reads.

The reader reads a Claude Code turn itself (``typed_turn``, ``count_turn``) and
looks for a ``"usage"`` key before handing any other line to ``json.loads``;
given the same reads, a reader whose parser has ``typed_decode=False`` (every
line through ``json.loads``, the reference) must ask the task's context for
exactly the same things.
"""

from __future__ import annotations

import json
from typing import cast

import attrs
import pytest
from _usage_support import RecordingContext, any_number_of_digits, claude_code_turn, lines
from hypothesis import given, settings
from hypothesis import strategies as st

from executor import TaskContext, TokenCounts, UsageParser, UsageRecord
from executor.process import Line, StdoutReader


@attrs.define
class JsonLinesSeen(UsageParser):
    """A parser that remembers which lines reached ``json.loads``."""

    seen: list[bytes | str] = attrs.field(factory=list)

    def parse_json(self, line: str | bytes) -> list[UsageRecord] | None:
        self.seen.append(line)
        return super().parse_json(line)


def read(reads: list[list[Line]], parser: UsageParser) -> RecordingContext:
    ctx = RecordingContext()
    reader = StdoutReader(cast(TaskContext, ctx), parser=parser)
    for batch in reads:
        reader.on_stdout(batch)
    return ctx


@pytest.mark.parametrize(
    ("raw", "may_hold"),
    [
        (b'{"usage": {"input_tokens": 1}}', True),
        (b'{"\\u0075sage": {"input_tokens": 1}}', True),  # an escaped key is still a key
        (b'{"us\\u0061ge": {"input_tokens": 1}}', True),
        (b'{"usag\\u0065": {"input_tokens": 1}}', True),
        (b'{"type": "user", "content": "\\u001b[31mred\\u001b[0m"}', False),
        (b'{"type": "user", "content": "the word usage"}', False),
        (b'{"text": "\\"usage\\": 5"}', False),  # inside a string the quotes are escaped
        (b'{"type": "assistant", "message": {"id": "m", "content": []}}', False),
        (b"plain text", False),
    ],
)
def test_only_lines_that_may_hold_usage_reach_json_loads(raw: bytes, may_hold: bool) -> None:
    parser = JsonLinesSeen()
    ctx = read([[(raw, False)]], parser)
    assert (parser.seen == [raw]) is may_hold
    if not may_hold:  # the skip loses nothing: the parser finds no usage there either
        assert UsageParser().parse(raw) is None
        assert ctx.calls == [("output", ("stdout", [(raw.decode(), False)]))]


def test_a_claude_code_turn_is_read_without_json_loads_and_counted_once() -> None:
    parser = JsonLinesSeen()
    first, second, tool_result = claude_code_turn(7)
    ctx = read([[(first, False), (second, False), (tool_result, False)]], parser)
    assert parser.seen == []  # the tool result has no "usage": not parsed either
    usage = json.loads(first)["message"]["usage"]
    tokens = TokenCounts(
        usage["input_tokens"],
        usage["output_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_creation_input_tokens"],
    )
    model = json.loads(first)["message"]["model"]
    assert ctx.calls == [
        ("output", ("stdout", [(tool_result.decode(), False)])),
        ("batch", (model, None, [tokens])),
    ]
    assert parser.lines_parsed == 2


def test_output_after_a_providers_totals_in_the_same_read_is_not_lost() -> None:
    turn = claude_code_turn(1)[0]
    result = json.dumps(
        {"type": "result", "total_cost_usd": 0.5, "usage": {"input_tokens": 9, "output_tokens": 2}}
    ).encode()
    ctx = read(
        [[(b"before", False), (turn, False), (result, False), (b"after", False)]], UsageParser()
    )
    assert [kind for kind, _ in ctx.calls] == ["output", "batch", "totals", "output"]
    assert ctx.calls[-1] == ("output", ("stdout", [("after", False)]))


def test_a_long_line_that_is_not_usage_is_cut_before_it_is_decoded() -> None:
    ctx = read([[(b"x" * 100_000, False)]], UsageParser())
    [(kind, (stream, [(text, cut)]))] = ctx.calls
    assert (kind, stream, cut) == ("output", "stdout", True)
    assert len(text) < 100_000


plain = st.sampled_from(
    [b"plain text", b"", b"\r", b'{"type":"user","message":{"role":"user"}}', b"\xff\xfe"]
)
turn_line = st.tuples(st.integers(0, 3), st.integers(0, 2)).map(
    lambda which: claude_code_turn(which[0])[which[1]]
)
read_line = st.tuples(st.one_of(lines(), plain, turn_line), st.integers(0, 9).map(lambda n: n == 0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(read_line, max_size=8), min_size=1, max_size=4))
def test_the_readers_fast_path_asks_the_context_what_json_loads_would(
    reads: list[list[Line]],
) -> None:
    with any_number_of_digits():
        fast = read(reads, UsageParser())
        reference = read(reads, UsageParser(typed_decode=False))
    assert fast.calls == reference.calls
