"""Generated stdout lines for the usage parser and a context that records what a reader does.

``lines()`` makes lines near Claude Code assistant turns, valid or not: keys
repeated, counts of every JSON type, values msgspec refuses and json.loads
takes (NaN, lone surrogates) or the reverse (ints past Python's digit limit),
lines cut, stray bytes, odd whitespace.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
from hypothesis import strategies as st

from events import MAX_RECORD_TOKENS
from executor import TokenCounts

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
    | st.integers(MAX_RECORD_TOKENS - 2, MAX_RECORD_TOKENS + 2)  # either side of the bound
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


@attrs.define
class RecordingContext:
    """Stands for a task's context: keeps, in order, what a stdout reader asked of it."""

    task_id: str = "t"
    calls: list[tuple[str, Any]] = attrs.field(factory=list)

    def output_lines(self, lines: Any, *, stream: str) -> None:
        self.calls.append(("output", (stream, list(lines))))

    def record_usage(self, **usage: Any) -> None:
        self.calls.append(("usage", usage))

    def record_usage_batch(
        self, *, model: str, provider: str | None, records: list[TokenCounts], source: str = ""
    ) -> None:
        self.calls.append(("batch", (model, provider, list(records))))

    def replace_provisional_usage(self, **usage: Any) -> None:
        usage.pop("source", None)
        self.calls.append(("totals", usage))

    def replace_provisional_by_model(self, totals: Any, *, source: str = "") -> None:
        self.calls.append(("totals by model", dict(totals)))

    def refuse_usage(self, reason: str) -> None:
        self.calls.append(("refused", reason))

    def unrecognised_usage(self, what: str) -> None:
        self.calls.append(("unrecognised", what))


def claude_code_turn(turn: int) -> list[bytes]:
    """One tool-using turn as Claude Code prints it: the assistant message once per
    content block (same id and usage), then the tool result as a ``user`` line."""
    usage = {
        "input_tokens": 3 + turn,
        "cache_creation_input_tokens": 120 + turn,
        "cache_read_input_tokens": 14_000 + turn,
        "output_tokens": 40 + turn,
        "service_tier": "standard",
    }
    blocks = [
        {"type": "text", "text": f"Reading handler {turn}."},
        {"type": "tool_use", "id": f"toolu_{turn}", "name": "Read", "input": {"file_path": "a"}},
    ]
    assistant = [
        {
            "type": "assistant",
            "message": {
                "id": f"msg_{turn}",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [block],
                "usage": usage,
            },
            "session_id": "s",
        }
        for block in blocks
    ]
    result = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {"tool_use_id": f"toolu_{turn}", "type": "tool_result", "content": "\tx\n"}
            ],
        },
        "session_id": "s",
    }
    return [json.dumps(line).encode() for line in [*assistant, result]]


@contextmanager
def any_number_of_digits() -> Iterator[None]:
    """Lift Python's int-string limit, the one case where the two readings differ on purpose."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(limit)
