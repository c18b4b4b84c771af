"""Token counts: the one value usage parsing, pricing and the task records share."""

from __future__ import annotations

from collections.abc import Iterable

import attrs


@attrs.frozen
class TokenCounts:
    """Token counts; ``input`` excludes cache tokens (Anthropic's convention).

    ``cache_write_1h``: how many of the ``cache_write`` tokens were written to
    Anthropic's 1-hour cache (``cache_creation.ephemeral_1h_input_tokens``),
    which costs more than the 5-minute one; a part of ``cache_write``, not
    another kind (``total`` does not add it).
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.cache_write_1h + other.cache_write_1h,
        )

    def covers(self, other: TokenCounts) -> bool:
        """Every kind at least ``other``'s: a running total that grew from ``other``."""
        return (
            self.input >= other.input
            and self.output >= other.output
            and self.cache_read >= other.cache_read
            and self.cache_write >= other.cache_write
        )

    def minus_clamped(self, other: TokenCounts) -> TokenCounts:
        """``self - other`` per kind, never below zero (counts only ever grow)."""
        cache_write = max(0, self.cache_write - other.cache_write)
        return TokenCounts(
            max(0, self.input - other.input),
            max(0, self.output - other.output),
            max(0, self.cache_read - other.cache_read),
            cache_write,
            min(cache_write, max(0, self.cache_write_1h - other.cache_write_1h)),
        )


#: Shared by every record and context that has counted nothing yet (it is frozen).
NO_TOKENS = TokenCounts()


def sum_tokens(parts: Iterable[TokenCounts]) -> TokenCounts:
    """The per-kind sums of ``parts``."""
    total = [0, 0, 0, 0, 0]
    for part in parts:
        total[0] += part.input
        total[1] += part.output
        total[2] += part.cache_read
        total[3] += part.cache_write
        total[4] += part.cache_write_1h
    return TokenCounts(*total)
