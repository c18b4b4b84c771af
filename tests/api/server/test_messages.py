"""Client message parsing and HTTP head reading under arbitrary input (hypothesis)."""

from __future__ import annotations

import json

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from api import HttpError, MessageError
from api.server._http import HttpConnection, RequestHead
from api.server._messages import ClientMessage, Command, Ping, Subscribe, Unsubscribe, parse_message

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
FIELDS = st.sampled_from(["type", "task_id", "since", "action", "data", "budget_usd"])
VALUES = st.sampled_from(
    ["subscribe", "unsubscribe", "command", "ping", "pause", "resume", "cancel", "set_budget", "*"]
)
MESSAGE_LIKE = st.dictionaries(FIELDS, VALUES | JSON, max_size=5)


def _outcome(text: str | bytes) -> ClientMessage | MessageError:
    """The parsed message, or the error; anything else escaping is the bug looked for."""
    try:
        return parse_message(text)
    except MessageError as exc:
        return exc


@given(st.one_of(JSON, MESSAGE_LIKE))
def test_any_json_parses_or_is_a_message_error(frame: object) -> None:
    outcome = _outcome(json.dumps(frame))
    assert isinstance(outcome, Subscribe | Unsubscribe | Ping | Command) or str(outcome)


@given(st.text() | st.binary())
def test_any_text_parses_or_is_a_message_error(text: str | bytes) -> None:
    outcome = _outcome(text)
    assert isinstance(outcome, Subscribe | Unsubscribe | Ping | Command) or str(outcome)


def test_every_nesting_depth_near_the_parser_limit_is_a_message_error() -> None:
    # json.loads accepts a value a few frames shallower than json.dumps can echo it
    # in the error message; random depths rarely hit that band, so walk them all.
    for depth in range(800, 1101):
        nested = "[" * depth + "]" * depth
        for text in (
            f'{{"type": {nested}}}',
            f'{{"type": "command", "action": {nested}}}',
            f'{{"type": "subscribe", "task_id": "*", "since": {nested}}}',
        ):
            assert isinstance(_outcome(text), MessageError)


@given(st.binary(max_size=20_000))
@settings(max_examples=60, deadline=None)
def test_any_bytes_give_a_head_an_http_error_or_nothing(data: bytes) -> None:
    async def read() -> None:
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(data)
        await client.send_eof()
        head: RequestHead | HttpError | None
        try:
            head = await HttpConnection(server, max_head_bytes=16 * 1024).read_head()
        except HttpError as exc:
            head = exc
        if isinstance(head, HttpError):
            assert head.status in (400, 431)
        else:
            assert head is None or head.path.startswith("/")

    trio.run(read)
