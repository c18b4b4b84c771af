"""Fuzz the WebSocket endpoint: whatever a client sends, the server answers or closes cleanly.

Each hypothesis example starts a server on loopback (pytest-trio runs every example
in a fresh ``trio.run``), completes a handshake with a bare wsproto client and sends
one generated input as raw frame bytes:

* a text message of any shape (random JSON, protocol messages with wrong types,
  huge numbers, ``NaN``, deep nesting, any text), whole or fragmented: an error
  reply (or the ordinary reply, if it happens to be valid), and the connection lives;
* a binary message: an error reply, and the connection lives;
* a text frame that is not UTF-8, or a frame that breaks RFC 6455 (reserved bits or
  opcodes, no mask, a continuation first, a long or fragmented control frame): the
  connection ends cleanly (FIN, not a reset) at once;
* a message over 64 KiB: a close with 1009.

After every example the server still answers a new client, and it logged no error.
"""

from __future__ import annotations

import json
import string

import attrs
import pytest
import structlog
import trio
import wsproto.events
from _api_support import RawWebSocket, receive_json, request, served, ws_client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

EXAMPLE_TIMEOUT = 10
MAX_MESSAGE = 64 * 1024
REPLY_TYPES = {"error", "pong", "subscribed", "unsubscribed", "command_result"}
#: wsproto reports a frame it cannot parse as a CloseConnection with the fitting code,
#: and trio-websocket, seeing no close frame on the wire, ends the TCP connection
#: without sending one: the client sees a clean FIN and no code. Either is accepted.
PROTOCOL_ERROR_CODES = frozenset({1002, 1007})
FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One RFC 6455 frame as a client sends it (masked unless told otherwise)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = b"\x5a\x17\xc3\x01"
    return head + key + mask(payload, key)


@attrs.frozen
class Probe:
    """Bytes to send after the handshake and what the server must do about them."""

    kind: str
    data: bytes
    #: "reply": an answer, and the connection stays; "close": the connection ends.
    outcome: str
    codes: frozenset[int] = frozenset()
    #: Whether a FIN without a close frame counts as a clean close.
    bare_close_ok: bool = False


# -- what clients send ------------------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**300), max_value=10**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
protocol_words = st.sampled_from(
    ["subscribe", "unsubscribe", "command", "ping", "pause", "resume", "cancel", "set_budget", "*"]
)
# Tokens that are JSON to Python's parser but not to the standard, or too big to use.
odd_literals = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-1e999",
        "1e-999",
        "-0",
        "9" * 5000,
        "0." + "1" * 5000,
    ]
)


def nest(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


#: Python's parser gives up near depth 1,000; the interesting depths are around it.
deep = st.builds(
    nest, st.integers(1, 3000) | st.integers(850, 1050), st.sampled_from(["list", "object"])
)


@st.composite
def protocol_shaped(draw: st.DrawFn) -> str:
    """A JSON object that looks like a client message, with any of its fields wrong."""
    fields: dict[str, str] = {}
    for name in ("type", "task_id", "since", "action", "data"):
        choice = draw(st.sampled_from(["absent", "word", "value", "odd", "deep"]))
        if choice == "word":
            fields[name] = json.dumps(draw(protocol_words))
        elif choice == "value":
            fields[name] = json.dumps(draw(json_values))
        elif choice == "odd":
            fields[name] = draw(odd_literals)
        elif choice == "deep":
            fields[name] = draw(deep)
    if draw(st.booleans()):
        fields["data"] = '{"budget_usd": ' + draw(odd_literals | json_values.map(json.dumps)) + "}"
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


text_messages = (
    protocol_shaped()
    | json_values.map(json.dumps)
    | odd_literals
    | deep
    | st.text(max_size=300)
    | st.text(alphabet=string.printable, max_size=300)
)


@st.composite
def fragmented(draw: st.DrawFn, opcode: int, payload: bytes) -> bytes:
    """``payload`` as one message, in one frame or split into several."""
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    if not cuts:
        return frame(opcode, payload)
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    frames = [frame(opcode if i == 0 else 0, piece, fin=False) for i, piece in enumerate(pieces)]
    frames[-1] = frame(0, pieces[-1])
    return b"".join(frames)


@st.composite
def answered(draw: st.DrawFn) -> Probe:
    if draw(st.integers(0, 4)) == 0:
        return Probe("binary", draw(fragmented(2, draw(st.binary(max_size=2000)))), "reply")
    text = draw(text_messages).encode()
    return Probe("text", draw(fragmented(1, text)), "reply")


@st.composite
def not_utf8(draw: st.DrawFn) -> Probe:
    before, after = draw(st.text(max_size=50)), draw(st.text(max_size=50))
    bad = draw(
        st.sampled_from(
            [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"]
        )
    )
    return Probe(
        "not utf-8",
        frame(1, before.encode() + bad + after.encode()),
        "close",
        PROTOCOL_ERROR_CODES,
        True,
    )


@st.composite
def oversize(draw: st.DrawFn) -> Probe:
    size = draw(st.integers(MAX_MESSAGE + 1, MAX_MESSAGE + 40_000))
    opcode = draw(st.sampled_from([1, 2]))
    payload = b"x" * size
    if draw(st.booleans()):
        data = frame(opcode, payload)
    else:
        half = size // 2
        data = frame(opcode, payload[:half], fin=False) + frame(0, payload[half:])
    return Probe("oversize", data, "close", frozenset({1009}))


@st.composite
def broken_frames(draw: st.DrawFn) -> Probe:
    payload = draw(st.binary(max_size=40))
    kind = draw(
        st.sampled_from(
            ["rsv", "opcode", "unmasked", "continuation", "long_control", "split_control"]
        )
    )
    if kind == "rsv":
        data = frame(1, b'{"type":"ping"}', rsv=draw(st.integers(1, 7)))
    elif kind == "opcode":
        data = frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), payload)
    elif kind == "unmasked":
        data = frame(1, b'{"type":"ping"}', masked=False)
    elif kind == "continuation":
        data = frame(0, payload)
    elif kind == "long_control":
        data = frame(draw(st.sampled_from([8, 9, 10])), b"x" * draw(st.integers(126, 400)))
    else:
        data = frame(draw(st.sampled_from([9, 10])), payload, fin=False)
    return Probe(f"broken frame: {kind}", data, "close", PROTOCOL_ERROR_CODES, True)


#: Half the examples are messages to answer; the rest split between the ways to fail.
probes = st.sampled_from(
    [answered(), answered(), answered(), not_utf8(), oversize(), broken_frames()]
).flatmap(lambda strategy: strategy)


# -- what the server must do ---------------------------------------------------------------
async def read_message(raw: RawWebSocket) -> wsproto.events.Event | str | None:
    """The next whole text message (as ``str``), or the next other event (None: EOF)."""
    text = ""
    while True:
        event = await raw.next_event()
        if not isinstance(event, wsproto.events.TextMessage):
            return event
        text += event.data
        if event.message_finished:
            return text


async def expect_reply_and_life(raw: RawWebSocket) -> None:
    reply = await next_reply(raw)
    assert reply["type"] in REPLY_TYPES, reply
    await raw.send(wsproto.events.TextMessage('{"type": "ping"}'))
    assert await next_reply(raw) == {"type": "pong"}


async def next_reply(raw: RawWebSocket) -> dict[str, object]:
    """The next frame that is not an event, skipping control frames."""
    while True:
        message = await read_message(raw)
        if isinstance(message, wsproto.events.Ping):
            await raw.send(message.response())
            continue
        assert isinstance(message, str), f"expected a reply, got {message!r}"
        decoded = json.loads(message)
        assert isinstance(decoded, dict)
        if decoded["type"] not in ("event", "gap"):
            return decoded


async def expect_clean_close(raw: RawWebSocket, probe: Probe) -> None:
    message = await read_message(raw)
    while isinstance(message, str):  # replies to what came before the bad frame
        message = await read_message(raw)
    if message is None:
        assert probe.bare_close_ok, "the connection ended without the close frame owed"
        return
    assert isinstance(message, wsproto.events.CloseConnection), message
    assert message.code in probe.codes, message
    await raw.send(message.response())


async def run_probe(probe: Probe) -> None:
    with trio.fail_after(EXAMPLE_TIMEOUT), structlog.testing.capture_logs() as logs:
        async with served() as stack:
            async with await trio.open_tcp_stream("127.0.0.1", stack.port) as stream:
                raw = RawWebSocket(stream)
                await raw.handshake()
                try:
                    await stream.send_all(probe.data)
                except trio.BrokenResourceError:
                    # The server may close before an oversize message is all out.
                    assert probe.outcome == "close"
                if probe.outcome == "reply":
                    await expect_reply_and_life(raw)
                else:
                    await expect_clean_close(raw, probe)
            async with ws_client(stack.port) as ws:
                assert await request(ws, {"type": "ping"}) == {"type": "pong"}
    assert [entry for entry in logs if entry["log_level"] in ("error", "critical")] == []


@FUZZ_SETTINGS
@given(probes)
async def test_any_client_frame_gets_a_reply_or_a_clean_close(probe: Probe) -> None:
    event(probe.kind)
    await run_probe(probe)


#: Every field the parser echoes back in its error message, with a nested value.
NESTED_FIELDS = (
    '{{"type": {0}}}',
    '{{"type": "command", "action": {0}}}',
    '{{"type": "subscribe", "task_id": {0}}}',
    '{{"type": "subscribe", "task_id": "*", "since": {0}}}',
    '{{"type": "command", "action": "set_budget", "data": {{"budget_usd": {0}}}}}',
)


async def test_every_nesting_depth_near_the_parser_limit_gets_an_error_reply() -> None:
    # Random depths rarely land in the narrow band (one depth, here) where the
    # parser still accepts a value the error message then fails to echo; walk them all.
    # The band moves with the server's stack depth, so the walk is wide.
    with trio.fail_after(60), structlog.testing.capture_logs() as logs:
        async with served() as stack, ws_client(stack.port) as ws:
            for depth in range(800, 1101):
                nested = nest(depth, "list")
                for template in NESTED_FIELDS:
                    await ws.send_message(template.format(nested))
                    reply = await receive_json(ws)
                    assert reply["type"] == "error", (depth, template, reply)
    assert [entry for entry in logs if entry["log_level"] in ("error", "critical")] == []
