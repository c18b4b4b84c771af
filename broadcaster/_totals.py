"""The caps on a session's usage totals, and how a total is read within them.

A usage record as a parser reads it holds at most ``MAX_RECORD_TOKENS`` tokens
of each kind and ``MAX_RECORD_COST_USD``; a session would need a trillion such
records to reach a cap, so for any input the parsers accept a total is the
exact sum. Records from elsewhere (a coroutine task's own figures published
as is, a store written before those bounds) can be far larger, and a float sum
of two finite costs can be ``inf``, which no event, JSON reply, metric or
resume accepts. So a total saturates: it reads as ``min(exact sum, cap)``
(never ``inf``, never negative), and its keeper says that it does (the
aggregate's ``saturated``, the ``runcast_usage_saturated`` gauge, a warning).

Each total has its cap: each kind of tokens, the unpriced tokens, the cost.
The same caps hold for the store's sums, the aggregate and the metrics, so all
three agree.
"""

from __future__ import annotations

import math
from typing import Final

from events import MAX_RECORD_COST_USD, MAX_RECORD_TOKENS

#: How many records of the largest size a total holds before it saturates.
_HEADROOM: Final = 10**12
#: The largest total of one kind of tokens (and of unpriced tokens): 10**24.
MAX_TOTAL_TOKENS: Final[int] = MAX_RECORD_TOKENS * _HEADROOM
#: The largest total cost in USD: 1e18.
MAX_TOTAL_COST_USD: Final[float] = MAX_RECORD_COST_USD * _HEADROOM


def capped_tokens(total: int) -> int:
    """``total`` kept within ``0 .. MAX_TOTAL_TOKENS``."""
    return min(max(total, 0), MAX_TOTAL_TOKENS)


def capped_cost(total: float) -> float:
    """``total`` kept within ``0.0 .. MAX_TOTAL_COST_USD`` (``inf`` saturates, NaN is 0)."""
    if math.isnan(total):
        return 0.0
    return float(min(max(total, 0.0), MAX_TOTAL_COST_USD))
