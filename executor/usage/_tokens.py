"""Token counts: the one value usage parsing, pricing and the task records share."""

from __future__ import annotations

from collections.abc import Iterable

import attrs


@attrs.frozen
class TokenCounts:
    """Token counts; ``input`` excludes cache tokens (Anthropic's convention)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    def minus_clamped(self, other: TokenCounts) -> TokenCounts:
        """``self - other`` per kind, never below zero (counts only ever grow)."""
        return TokenCounts(
            max(0, self.input - other.input),
            max(0, self.output - other.output),
            max(0, self.cache_read - other.cache_read),
            max(0, self.cache_write - other.cache_write),
        )


#: Shared by every record and context that has counted nothing yet (it is frozen).
NO_TOKENS = TokenCounts()


def sum_tokens(parts: Iterable[TokenCounts]) -> TokenCounts:
    """The per-kind sums of ``parts``."""
    total = [0, 0, 0, 0]
    for part in parts:
        total[0] += part.input
        total[1] += part.output
        total[2] += part.cache_read
        total[3] += part.cache_write
    return TokenCounts(*total)
