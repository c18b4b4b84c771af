"""A pretty-printed JSON object over many lines (Gemini CLI ``--output-format json``).

The reader publishes every line as output, as before, and also reads the
joined object for usage; an object past ``max_bytes`` is let go, counted and
said once.
"""

from __future__ import annotations

import json
from typing import cast

from _usage_support import RecordingContext

from executor import TaskContext, TokenCounts, UsageParser
from executor.process import Line, LineSplitter, ObjectAssembler, StdoutReader

STATS = {
    "session_id": "s",
    "response": "hi",
    "stats": {
        "models": {
            "gemini-3-flash-preview": {
                "tokens": {"prompt": 100, "candidates": 5, "cached": 40, "thoughts": 7, "tool": 3}
            }
        }
    },
}


def lines_of(document: object) -> list[Line]:
    return [(text.encode(), False) for text in json.dumps(document, indent=2).split("\n")]


def read(reads: list[list[Line]], reader: StdoutReader) -> None:
    for batch in reads:
        reader.on_stdout(batch)


def test_an_object_split_over_reads_is_joined_and_its_lines_stay_output() -> None:
    ctx = RecordingContext()
    reader = StdoutReader(cast(TaskContext, ctx), parser=UsageParser())
    lines = lines_of(STATS)
    read([lines[:5], lines[5:]], reader)
    output = [text for kind, args in ctx.calls if kind == "output" for text, _ in args[1]]
    assert output == [raw.decode() for raw, _ in lines]
    [usage] = [args for kind, args in ctx.calls if kind == "batch"]
    # billable input = prompt - cached + tool; output = candidates + thoughts
    assert usage == ("gemini-3-flash-preview", None, [TokenCounts(63, 12, 40, 0)])


def test_an_object_past_the_bound_is_counted_said_once_and_not_read() -> None:
    ctx = RecordingContext()
    reader = StdoutReader(
        cast(TaskContext, ctx), parser=UsageParser(), assembler=ObjectAssembler(max_bytes=64)
    )
    lines = lines_of(STATS)
    read([lines], reader)
    assert reader.assembler.too_large == 1
    assert [kind for kind, _ in ctx.calls] == ["refused", "output"]
    assert "longer than 64 bytes" in ctx.calls[0][1]
    # The assembler let it go: a later object that fits is read.
    reader.assembler.max_bytes = 10_000
    read([lines], reader)
    assert [kind for kind, _ in ctx.calls][-2:] == ["output", "batch"]


def test_a_brace_inside_an_object_does_not_end_it() -> None:
    assembler = ObjectAssembler()
    parts = [b"{", b'  "a": {', b"  },", b'  "b": 1', b"}"]
    assert [assembler.feed(part, False) for part in parts[:-1]] == [None] * 4
    assert json.loads(assembler.feed(parts[-1], False) or b"") == {"a": {}, "b": 1}


def test_crlf_lines_and_a_last_brace_without_a_newline_end_the_object() -> None:
    ctx = RecordingContext()
    reader = StdoutReader(cast(TaskContext, ctx), parser=UsageParser())
    splitter = LineSplitter()
    text = json.dumps(STATS, indent=2).replace("\n", "\r\n").encode()  # no final newline
    reader.on_stdout(splitter.feed(text))
    assert [kind for kind, _ in ctx.calls] == ["output"]  # the closing brace is not read yet
    reader.on_stdout(splitter.finish())
    [usage] = [args for kind, args in ctx.calls if kind == "batch"]
    assert usage == ("gemini-3-flash-preview", None, [TokenCounts(63, 12, 40, 0)])
