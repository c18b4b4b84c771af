"""Output lines of one read go out as one task_output, bounded in size."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    MAX_OUTPUT_LINE,
    MAX_OUTPUT_TEXT,
    EventCodec,
    Published,
    Publisher,
    TaskOutput,
)
from executor import TaskContext, open_executor
from executor.process import OutputLine, StdoutReader, pack_output

MARK = "…[truncated]"


def lines_of(events: list[TaskOutput]) -> list[str]:
    return [text for event in events for text in event.line.split("\n")]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="ab\r\u00e9\U0001f600", max_size=30)
            | st.integers(MAX_OUTPUT_LINE - 2, MAX_OUTPUT_LINE + 40).map(lambda n: "x" * n),
            st.booleans(),
        ),
        max_size=60,
    ),
    st.sampled_from(["stdout", "stderr"]),
)
def test_packed_events_hold_every_line_in_order_cut_and_bounded(
    lines: list[OutputLine], stream: str
) -> None:
    events, cut = pack_output("t", "stdout" if stream == "stdout" else "stderr", lines)
    expected = [text if len(text) <= MAX_OUTPUT_LINE else text[:0] for text, _ in lines]
    got = lines_of(events)
    assert len(got) == len(lines) == sum(event.lines for event in events)
    for (text, _), (kept, shown) in zip(lines, zip(expected, got, strict=True), strict=True):
        if len(text) <= MAX_OUTPUT_LINE:
            assert shown == kept
        else:
            assert len(shown) == MAX_OUTPUT_LINE
            assert shown == text[: MAX_OUTPUT_LINE - len(MARK)] + MARK
    assert cut == sum(1 for text, was_cut in lines if was_cut or len(text) > MAX_OUTPUT_LINE)
    assert all(len(event.line) <= MAX_OUTPUT_TEXT for event in events)
    # Only a full event is closed: the next one's first line would not have fitted.
    for event, following in itertools.pairwise(events):
        assert len(event.line) + 1 + len(following.line.split("\n")[0]) > MAX_OUTPUT_TEXT
    # Each event's flag says whether one of ITS lines was cut.
    position = 0
    for event in events:
        mine = lines[position : position + event.lines]
        position += event.lines
        assert event.truncated == any(c or len(t) > MAX_OUTPUT_LINE for t, c in mine)


def test_a_read_of_long_lines_fills_events_up_to_the_bound() -> None:
    line = "y" * 1_000
    events, cut = pack_output("t", "stdout", [(line, False)] * 10)
    per_event = (MAX_OUTPUT_TEXT + 1) // (len(line) + 1)  # 4 lines and 3 newlines fit
    assert [event.lines for event in events] == [per_event, per_event, 10 - 2 * per_event]
    assert cut == 0
    assert not any(event.truncated for event in events)


def test_the_largest_event_encodes_under_a_clients_one_mebibyte() -> None:
    # Every character escaped to 12 bytes (an astral one, as a surrogate pair).
    worst = "\U0001f600" * MAX_OUTPUT_LINE
    events, _ = pack_output("t", "stdout", [(worst, False)] * 100)
    codec = EventCodec()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    sizes = [len(codec.encode(2**40, now, event).encode()) for event in events]
    assert max(sizes) < 1 << 20


def test_old_frames_without_lines_decode_as_one_line() -> None:
    frame = {
        "type": "event",
        "event": "task_output",
        "task_id": "t",
        "seq": 3,
        "time": "2026-01-01T00:00:00.000000Z",
        "data": {"stream": "stdout", "line": "hello", "truncated": False},
    }
    event = EventCodec().from_dict(frame).event
    assert event == TaskOutput(task_id="t", line="hello", lines=1)
    assert json.loads(EventCodec().encode(3, datetime(2026, 1, 1, tzinfo=UTC), event))["data"] == {
        "stream": "stdout",
        "line": "hello",
        "truncated": False,
        "lines": 1,
    }


async def test_a_reads_output_lines_are_one_event_per_stream() -> None:
    publisher = Publisher()
    seen: list[Published] = []
    publisher.add_listener(seen.append)
    long = b"z" * (MAX_OUTPUT_LINE + 10)

    async def replay(ctx: TaskContext) -> None:
        reader = StdoutReader(ctx)
        reader.on_stdout([(b"one\r", False), (b'{"usage": {"input_tokens": 2}}', False)])
        reader.on_stdout([(b"two", False), (long, False), (b"cut", True), (b"three", False)])
        reader.on_stderr([(b"oops", False), (b"again", False)])
        ctx.output("python\nlines")

    async with open_executor(publisher) as executor:
        await executor.submit(replay, task_id="t").wait()
    outputs = [p.event for p in seen if isinstance(p.event, TaskOutput)]
    # A line cut to MAX_OUTPUT_LINE fills an event on its own.
    assert [(o.stream, o.lines, o.truncated) for o in outputs] == [
        ("stdout", 1, False),
        ("stdout", 1, False),
        ("stdout", 1, True),
        ("stdout", 2, True),
        ("stderr", 2, False),
        ("stdout", 2, False),
    ]
    assert lines_of(outputs) == [
        "one",
        "two",
        "z" * (MAX_OUTPUT_LINE - len(MARK)) + MARK,
        "cut",
        "three",
        "oops",
        "again",
        "python",
        "lines",
    ]
    assert executor.output_lines_truncated == 2
