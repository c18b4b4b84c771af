"""JSON that looks like usage (a "usage", "stats" or "modelUsage" key) in no known
format: its lines stay output, and the task says so once, however many there are."""

from __future__ import annotations

from typing import cast

from _usage_support import RecordingContext

from executor import TaskContext, UsageParser
from executor.process import StdoutReader

UNKNOWN = [
    b'{"usage": {"tokens_in": 5}}',
    b'{"stats": {"tokens": 7}}',
    b'{"type": "done", "usage": 3, "modelUsage": {"m": {"inputTokens": 1}}}',
    b'{"usage": {"tokens_in": 6}}',
]


def test_usage_like_json_in_no_known_format_is_said_once_and_counted() -> None:
    ctx = RecordingContext()
    parser = UsageParser()
    reader = StdoutReader(cast(TaskContext, ctx), parser=parser)
    reader.on_stdout([(line, False) for line in UNKNOWN[:2]])
    reader.on_stdout([(line, False) for line in UNKNOWN[2:]])
    said = [args for kind, args in ctx.calls if kind == "unrecognised"]
    assert said == ["a JSON object with usage in no known usage format"]
    assert parser.lines_unrecognised == 4
    output = [text for kind, args in ctx.calls if kind == "output" for text, _ in args[1]]
    assert output == [line.decode() for line in UNKNOWN]


def test_known_formats_and_plain_json_are_not_unrecognised() -> None:
    ctx = RecordingContext()
    parser = UsageParser()
    reader = StdoutReader(cast(TaskContext, ctx), parser=parser)
    lines = [
        b'{"usage": {"input_tokens": 5}}',
        b'{"type": "user", "message": {"content": "x"}}',
        b'{"type": "turn.completed", "usage": {"input_tokens": 3, "cached_input_tokens": 1}}',
    ]
    reader.on_stdout([(line, False) for line in lines])
    assert parser.lines_unrecognised == 0
    assert "unrecognised" not in [kind for kind, _ in ctx.calls]
