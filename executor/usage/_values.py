"""The numbers and names of a usage line, as the parser reads them.

A count is an int in ``0..MAX_RECORD_TOKENS`` (absent or null: 0), a cost a
number in ``0..MAX_RECORD_COST_USD``.  A value of another type is not usage
(``NotUsage``); a number outside the range is refused (``OutOfRange``, which
says what it was), so the parser can say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events import MAX_RECORD_COST_USD, MAX_RECORD_TOKENS

from ._tokens import TokenCounts


class NotUsage(Exception):
    """The line looked like usage but a count or cost was not a number."""


class OutOfRange(NotUsage):
    """A count or cost is a number outside what one record may hold; says which."""

    def __init__(self, key: str, value: float, bound: float) -> None:
        super().__init__(f"{key} = {_shown(value)} is not in 0..{bound:,.0f}")


def _shown(value: float) -> str:
    """The number as written, or how many digits it has if that would be long."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's int-string limit (lifted when it was read)
        return "(a number of too many digits to show)"
    return text if len(text) <= 24 else f"(a number of {len(text.lstrip('-'))} digits)"


def read_count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key, 0)
    # The usual case first: called 4 times a line.
    if type(value) is int and 0 <= value <= MAX_RECORD_TOKENS:
        return value
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise NotUsage(key)
    if not 0 <= value <= MAX_RECORD_TOKENS:  # negative, or beyond any real record
        raise OutOfRange(key, value, MAX_RECORD_TOKENS)
    return int(value)


def read_cost(value: object, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotUsage(key)
    if not 0 <= value <= MAX_RECORD_COST_USD:  # NaN fails it too; ints compare exactly
        raise OutOfRange(key, value, MAX_RECORD_COST_USD)
    return float(value)


def read_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def anthropic_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    """Anthropic's usage; of the cache writes, ``cache_creation.ephemeral_1h_input_tokens``
    went to the 1-hour cache (the rest, ``ephemeral_5m_input_tokens``, to the 5-minute)."""
    cache_write = read_count(usage, "cache_creation_input_tokens")
    written = usage.get("cache_creation")
    one_hour = read_count(written, "ephemeral_1h_input_tokens") if isinstance(written, dict) else 0
    return TokenCounts(
        input=read_count(usage, "input_tokens"),
        output=read_count(usage, "output_tokens"),
        cache_read=read_count(usage, "cache_read_input_tokens"),
        cache_write=cache_write,
        cache_write_1h=min(one_hour, cache_write),
    )


def _cached(details: object) -> int:
    return read_count(details, "cached_tokens") if isinstance(details, dict) else 0


def openai_chat_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    prompt = read_count(usage, "prompt_tokens")
    cached = min(prompt, _cached(usage.get("prompt_tokens_details")))
    return TokenCounts(
        input=prompt - cached, output=read_count(usage, "completion_tokens"), cache_read=cached
    )


def openai_responses_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    total_input = read_count(usage, "input_tokens")
    cached = min(total_input, _cached(usage.get("input_tokens_details")))
    return TokenCounts(
        input=total_input - cached, output=read_count(usage, "output_tokens"), cache_read=cached
    )
