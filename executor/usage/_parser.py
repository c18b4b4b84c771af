"""Usage found in a subprocess's stdout lines.

Recognised JSON shapes, one object per line:

* runcast's own: ``{"usage": {"input_tokens", "output_tokens", "cache_read_tokens",
  "cache_write_tokens"}, "model"?, "provider"?, "cost_usd"?}``; each line is an
  increment and ``input_tokens`` excludes cache tokens.
* Claude Code ``--output-format stream-json``: ``assistant`` lines carry the
  turn's ``message.usage``, repeated once per content block, so they count once
  per ``message.id``; a ``result`` line's running totals (``modelUsage`` per
  model, else the turn's ``usage`` and ``total_cost_usd``) replace the
  provisional per-turn sum (``_claude_code``).
* Anthropic Messages API responses (``"type": "message"``), counted per id;
  ``cache_creation.ephemeral_1h_input_tokens`` is kept apart (priced higher).
* OpenAI chat completions (``prompt_tokens`` include the ``cached_tokens``) and
  responses (``input_tokens`` include ``input_tokens_details.cached_tokens``),
  counted per response id, so streamed snapshots of one response count once.
* Codex ``exec --json`` ``turn.completed`` and Gemini CLI's ``stats`` (the
  ``--output-format json`` object, joined by the stdout reader, and the
  ``stream-json`` ``result``): running totals, of which each counts what it
  grew by (``_agents``).

Each record names the format it was read in (``UsageRecord.source``).  A JSON
object with a ``usage``, ``stats`` or ``modelUsage`` key that no format reads
is counted (``lines_unrecognised``) and said once (``on_unrecognised``).

Anything else — including malformed JSON — is not usage and stays output.

Bounds: a count is an int in ``0..MAX_RECORD_TOKENS``, a cost a number in
``0..MAX_RECORD_COST_USD`` (finite).  A record with a number outside them (2**63
tokens, a 400-digit count, a cost of 1e308 or NaN) is refused: its line stays
output, nothing of it is counted, and ``on_refused`` is told why (the stdout
reader turns that into one warning); the parser's state is left as it was.
Other values where a number belongs (strings, bools, floats as counts) are
simply not usage, as before.

Decoding: a line mentioning ``"assistant"`` is first decoded by msgspec
(``typed_turn``) into ``_TurnLine``, which reads only ``type`` and
``message``'s ``id``, ``model`` and ``usage`` counts (ints >= 0, validated in
C) and skips everything else (the content blocks) without building it.  The
second content block of a turn decodes to a value equal to the first's (same
id, model and counts) and is recognised by one comparison.  Where msgspec says
anything but "a Claude Code assistant turn with valid counts" (another shape, a
count that is null, negative, a float or a bool, or an error: NaN, Infinity, a
lone surrogate, bytes that are not UTF-8), the line goes the ``json.loads`` way
(``parse_json``), so what counts is what ``json.loads`` made of it; both take
the last of duplicate keys.  Two cases differ, both on purpose: JSON nested too
deep for the decoder is not usage (``json.loads`` raised ``RecursionError`` out
of the reader), and an assistant turn with a number of more than 4,300 digits
in a field not read is counted (``json.loads`` refused the whole line:
Python's int-string limit).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import attrs
import msgspec

from events import MAX_RECORD_TOKENS

from ._agents import RunningTotals, codex_tokens, gemini_json_tokens, gemini_stream_tokens
from ._claude_code import ClaudeCodeTotals
from ._record import UsageRecord
from ._tokens import TokenCounts
from ._values import (
    NotUsage,
    OutOfRange,
    anthropic_tokens,
    openai_chat_tokens,
    openai_responses_tokens,
    read_cost,
    read_count,
    read_text,
)

RUNCAST_USAGE_KEYS = frozenset(
    ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
)
MAX_TRACKED_IDS = 4096
#: A JSON object with one of these keys at the top looks like usage: if no
#: known format reads it, the task says so (once).
USAGE_LIKE_KEYS = frozenset(("usage", "stats", "modelUsage"))


# Out of range: msgspec refuses the line and json.loads's reading refuses the record.
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_RECORD_TOKENS)]


# gc=False: these hold only values decoded from JSON (str, int, None, and for
# an odd id or model a list or dict), which cannot refer back to them, so they
# can never be part of a cycle; untracked, two decodes per record add nothing
# for the collector to count or traverse.
class _CacheCreation(msgspec.Struct, gc=False):
    """``usage.cache_creation``: of the cache writes, those to the 1-hour cache."""

    ephemeral_1h_input_tokens: Count = 0


class _TurnUsage(msgspec.Struct, gc=False):
    """An assistant turn's counts, checked by msgspec: ints in 0..MAX_RECORD_TOKENS, absent 0."""

    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    cache_creation_input_tokens: Count = 0
    cache_creation: _CacheCreation | None = None


class _Turn(msgspec.Struct, gc=False):
    """An assistant turn's ``message``: what is read of it, and what tells a repeat.

    Two content blocks of one turn decode to equal values (same id, model and
    counts), whichever other keys their usage has.
    """

    id: Any = None
    model: Any = None
    usage: _TurnUsage | None = None


class _TurnLine(msgspec.Struct, gc=False):
    """A line decoded for its ``type`` and ``message`` only; other keys are skipped."""

    type: Any = None
    message: _Turn | None = None


_decode_turn_line = msgspec.json.Decoder(_TurnLine).decode
#: What ``typed_turn`` catches: msgspec refused the line (``json.loads`` decides).
_TURN_DECODE_ERRORS = (msgspec.DecodeError, UnicodeError, RecursionError)

Counted = tuple[str | None, TokenCounts]
"""What a line adds: the model it names (None: the task's) and the new tokens."""


def typed_turn(line: str | bytes) -> _Turn | None:
    """The assistant turn on ``line`` as msgspec reads it, counts valid; else None.

    None also where msgspec refuses the line (a count that is not an int >= 0
    included): then ``json.loads``'s reading is the rule
    (``UsageParser.parse_json``).
    """
    try:
        decoded = _decode_turn_line(line)
    except _TURN_DECODE_ERRORS:
        return None
    turn = decoded.message
    if decoded.type != "assistant" or turn is None or turn.usage is None:
        return None
    return turn


def _records(counted: Counted | None, source: str = "claude-code") -> list[UsageRecord]:
    return [] if counted is None else [UsageRecord(counted[1], model=counted[0], source=source)]


def _loads(line: str | bytes) -> object:
    """``json.loads`` of the line as text (invalid UTF-8 replaced); None if not JSON."""
    text = line if isinstance(line, str) else line.decode("utf-8", "replace")
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can go
        return None


@attrs.define
class UsageParser:
    """Reads one attempt's stdout; remembers per-id counts to count each response once."""

    # Least recently seen first.  An OrderedDict, not a dict: taking the oldest
    # out of a dict whose front was deleted over and over scans the dead slots.
    _counted: OrderedDict[str, TokenCounts] = attrs.field(factory=OrderedDict)
    _last_model: str | None = None
    # The process's running totals as of its previous ``result`` line.
    _claude_code: ClaudeCodeTotals = attrs.field(factory=ClaudeCodeTotals)
    # Codex's and Gemini CLI's running totals, by model ("": the task's).
    _running_totals: RunningTotals = attrs.field(factory=RunningTotals)
    # The previous turn counted: a content block equal to it is a repeat.
    _last_turn: _Turn | None = None
    lines_parsed: int = 0
    # False: every line read with json.loads, as before msgspec; the reference
    # the property tests and the ingestion benchmark compare with.
    typed_decode: bool = True
    #: Told why, once for each record refused for a number out of range.
    on_refused: Callable[[str], object] | None = None
    records_refused: int = 0
    #: Told once, for the first JSON object that looked like usage (a key of
    #: ``USAGE_LIKE_KEYS``) in no known format; all are counted.
    on_unrecognised: Callable[[str], object] | None = None
    lines_unrecognised: int = 0

    def parse(self, line: str | bytes) -> list[UsageRecord] | None:
        """The usage on ``line`` (maybe none new: ``[]``); None if it is not usage.

        ``line`` as bytes is read as UTF-8, invalid bytes replaced.
        """
        if self.typed_decode and (
            line.find(b'"assistant"') >= 0  # not ``in``: see process.StdoutReader.on_stdout
            if isinstance(line, bytes)
            else '"assistant"' in line
        ):
            turn = typed_turn(line)
            if turn is not None:
                return _records(self.count_turn(turn))
        return self.parse_json(line)

    def count_turn(self, turn: _Turn) -> Counted | None:
        """What a turn from ``typed_turn`` adds; None if nothing new."""
        self.lines_parsed += 1
        return self._turn(turn)

    def parse_json(self, line: str | bytes) -> list[UsageRecord] | None:
        """``parse`` with ``json.loads`` only: the reading the typed one must agree with."""
        message = _loads(line)
        if not isinstance(message, dict):
            return None
        try:
            records = self._dispatch(message)
        except OutOfRange as refused:
            self._refuse(str(refused))
            return None
        except NotUsage:
            records = None
        if records is not None:
            self.lines_parsed += 1
        elif not USAGE_LIKE_KEYS.isdisjoint(message):
            self._unrecognised(message)
        return records

    def _unrecognised(self, message: Mapping[str, Any]) -> None:
        self.lines_unrecognised += 1
        if self.lines_unrecognised == 1 and self.on_unrecognised is not None:
            keys = ", ".join(sorted(key for key in message if key in USAGE_LIKE_KEYS))
            self.on_unrecognised(f"a JSON object with {keys} in no known usage format")

    def _refuse(self, reason: str) -> None:
        self.records_refused += 1
        if self.on_refused is not None:
            self.on_refused(reason)

    def _dispatch(self, message: dict[str, Any]) -> list[UsageRecord] | None:
        kind = message.get("type")
        inner = message.get("message")
        if kind == "assistant" and isinstance(inner, dict) and isinstance(inner.get("usage"), dict):
            return _records(
                self._claude_code_turn(inner.get("id"), inner.get("model"), inner["usage"])
            )
        if kind == "result" and isinstance(message.get("usage"), dict):
            return self._claude_code_result(message)
        stats = message.get("stats")
        if isinstance(stats, dict):
            found = self._gemini(kind, stats)
            if found is not None:
                return found
        response = message.get("response")
        if (
            isinstance(kind, str)
            and kind.startswith("response.")
            and isinstance(response, dict)
            and isinstance(response.get("usage"), dict)
        ):
            tokens = openai_responses_tokens(response["usage"])
            return self._per_id_of(response, tokens, "openai-responses")
        usage = message.get("usage")
        if not isinstance(usage, dict):
            return None
        if kind == "turn.completed" and "cached_input_tokens" in usage:
            return self._running({"": codex_tokens(usage)}, "codex-exec")
        if kind == "message" or "cache_creation_input_tokens" in usage:
            return self._per_id_of(message, anthropic_tokens(usage), "anthropic")
        if "prompt_tokens" in usage or "completion_tokens" in usage:
            return self._per_id_of(message, openai_chat_tokens(usage), "openai-chat")
        if message.get("object") == "response" or "input_tokens_details" in usage:
            return self._per_id_of(message, openai_responses_tokens(usage), "openai-responses")
        if usage and set(usage) <= RUNCAST_USAGE_KEYS:
            return self._runcast(message, usage)
        return None

    def _claude_code_turn(
        self, message_id: object, model: object, usage: Mapping[str, Any]
    ) -> Counted | None:
        """A turn read by ``json.loads``: the same value the typed decoder makes of it."""
        tokens = anthropic_tokens(usage)
        one_hour = _CacheCreation(tokens.cache_write_1h) if tokens.cache_write_1h else None
        counts = _TurnUsage(
            tokens.input, tokens.output, tokens.cache_read, tokens.cache_write, one_hour
        )
        return self._turn(_Turn(message_id, model, counts))

    def _turn(self, turn: _Turn) -> Counted | None:
        # Each content block of a message repeats its id, model and usage: a
        # repeat of the previous block is recognised by one comparison.
        if turn.id is not None and turn == self._last_turn:
            return None
        self._last_turn = turn
        usage = turn.usage
        assert usage is not None  # typed_turn and _claude_code_turn give one
        written = usage.cache_creation
        tokens = TokenCounts(
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens,
            0
            if written is None
            else min(written.ephemeral_1h_input_tokens, usage.cache_creation_input_tokens),
        )
        return self._per_id(turn.id, turn.model, tokens)

    def _runcast(self, message: dict[str, Any], usage: Mapping[str, Any]) -> list[UsageRecord]:
        tokens = TokenCounts(
            input=read_count(usage, "input_tokens"),
            output=read_count(usage, "output_tokens"),
            cache_read=read_count(usage, "cache_read_tokens"),
            cache_write=read_count(usage, "cache_write_tokens"),
        )
        record = UsageRecord(
            tokens,
            model=read_text(message.get("model")),
            provider=read_text(message.get("provider")),
            cost_usd=read_cost(message.get("cost_usd"), "cost_usd"),
            source="runcast",
        )
        return [record]

    def _per_id_of(
        self, message: Mapping[str, Any], tokens: TokenCounts, source: str
    ) -> list[UsageRecord]:
        return _records(self._per_id(message.get("id"), message.get("model"), tokens), source)

    def _per_id(
        self, message_id: object, model_value: object, tokens: TokenCounts
    ) -> Counted | None:
        """Count only what this id adds beyond what was already counted for it."""
        # What read_text does, written out: once per record.
        model = model_value if isinstance(model_value, str) and model_value else None
        if model is not None:
            self._last_model = model
        if not isinstance(message_id, str) or not message_id:
            delta = tokens
        else:
            key = message_id
            counted = self._counted
            previous = counted.get(key)
            if previous is None:
                counted[key] = tokens
                if len(counted) > MAX_TRACKED_IDS:
                    counted.popitem(last=False)  # forget the least recently seen id
                delta = tokens
            else:
                counted.move_to_end(key)
                if previous == tokens:
                    # Claude Code repeats a message's usage once per content block.
                    return None
                counted[key] = TokenCounts(
                    max(previous.input, tokens.input),
                    max(previous.output, tokens.output),
                    max(previous.cache_read, tokens.cache_read),
                    max(previous.cache_write, tokens.cache_write),
                )
                delta = tokens.minus_clamped(previous)
        if delta.total == 0:
            return None
        return model, delta

    def _gemini(self, kind: object, stats: Mapping[str, Any]) -> list[UsageRecord] | None:
        if kind == "result":
            return self._running(gemini_stream_tokens(stats), "gemini-stream-json")
        if kind is None and isinstance(stats.get("models"), dict):
            return self._running(gemini_json_tokens(stats), "gemini-json")
        return None

    def _running(self, totals: Mapping[str, TokenCounts], source: str) -> list[UsageRecord]:
        """Records for running totals by model: what each grew by since the last."""
        records = []
        for model, tokens in totals.items():
            grown = self._running_totals.since(model, tokens)
            if grown.total:
                records.append(UsageRecord(grown, model=model or None, source=source))
        return records

    def _claude_code_result(self, message: Mapping[str, Any]) -> list[UsageRecord]:
        return self._claude_code.result(message, self._last_model)
