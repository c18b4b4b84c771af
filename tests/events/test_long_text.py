"""Long text (task_output's packed lines) is written as ``json.dumps`` writes it.

The wire writes long ASCII text through msgspec; these check that path and the
``json`` one it falls back to give ``json.dumps``'s bytes for every character.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from events import MAX_OUTPUT_TEXT, EventCodec, TaskOutput
from events._writers import _LONG_FROM, _encode_long_text

START = datetime(2026, 11, 22, 12, 0, 0, 5, tzinfo=UTC)
CODEC = EventCodec()

ascii_text = st.text(
    st.characters(max_codepoint=0x7F), min_size=_LONG_FROM, max_size=MAX_OUTPUT_TEXT
)
# Mostly ASCII (the fast path), sometimes DEL, other controls, non-ASCII, lone surrogates.
mixed_text = st.text(
    st.one_of(
        st.characters(max_codepoint=0x7F),
        st.sampled_from(["\x7f", "\x00", "\x1f", "\u2028", "é", "\ud800", "\U0001f600"]),
    ),
    max_size=MAX_OUTPUT_TEXT,
)


def _dumped(seq: int, event: TaskOutput) -> str:
    return json.dumps(CODEC.to_dict(seq, START, event), separators=(",", ":"))


@given(ascii_text | mixed_text)
def test_long_text_is_written_as_json_dumps_writes_it(text: str) -> None:
    assert _encode_long_text(text) == json.dumps(text)
    event = TaskOutput(task_id="t", line=text, lines=text.count("\n") + 1)
    assert CODEC.encode(3, START, event) == _dumped(3, event)


def test_every_ascii_character_long_or_short_matches_json_dumps() -> None:
    for code in range(0x80):
        for text in (chr(code) * _LONG_FROM, "x" * (_LONG_FROM - 1) + chr(code), chr(code)):
            assert _encode_long_text(text) == json.dumps(text), code


def test_a_task_output_frame_at_its_size_bound_round_trips() -> None:
    text = ('{"type":"user","content":"a\\tb"}\n' * 200)[:MAX_OUTPUT_TEXT]
    event = TaskOutput(task_id="t", line=text, lines=text.count("\n") + 1)
    wire = CODEC.encode(9, START, event)
    assert wire == _dumped(9, event)
    assert CODEC.decode(wire).event == event
