"""Usage totals as the store sums them: exact past what SQLite's integers hold.

A usage row holds counts up to 2**63 - 1, and SQLite's ``SUM`` of integers
fails ("integer overflow") once a sum passes that, which two rows can do; one
row's four kinds added together can pass it too, and SQLite then makes the sum
an inexact REAL without a word. So the plain sums are asked for first (the usual
case, and twice as fast), and when one of them overflowed, the same query runs
again with every integer summed in two halves, its high and its low 32 bits,
joined in Python: exact for any fewer than 2**31 rows. The totals then saturate
at the caps the broadcaster's do (``broadcaster.MAX_TOTAL_TOKENS``, ``_COST_USD``):
a float sum of costs can reach inf, which no event, reply or resume accepts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from broadcaster import capped_cost, capped_tokens
from events import total_tokens


@attrs.frozen
class UsageTotals:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_tokens: int = 0
    #: Source usage records (a stored row may sum several).
    records: int = 0

    @property
    def total_tokens(self) -> int:
        return total_tokens(self)


_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_UNPRICED = "CASE WHEN cost_source = 'unpriced' THEN {} ELSE 0 END"
_HALF_BITS = 32
_LOW_HALF = (1 << _HALF_BITS) - 1

# Both: the four kinds, the unpriced tokens, the records (one sum each, or two
# halves each: the unpriced ones by kind), then the cost.
_PLAIN = [
    *(f"SUM({kind})" for kind in _KINDS),
    f"SUM({_UNPRICED.format(' + '.join(_KINDS))})",
    "SUM(records)",
    "SUM(cost_usd)",
]
_HALVED = [
    f"SUM(({expression}) >> {_HALF_BITS}), SUM(({expression}) & {_LOW_HALF})"
    for expression in (*_KINDS, *(_UNPRICED.format(kind) for kind in _KINDS), "records")
] + ["SUM(cost_usd)"]


def _totals(counts: Sequence[int], unpriced: int, cost: float | None) -> UsageTotals:
    return UsageTotals(
        input_tokens=capped_tokens(counts[0]),
        output_tokens=capped_tokens(counts[1]),
        cache_read_tokens=capped_tokens(counts[2]),
        cache_write_tokens=capped_tokens(counts[3]),
        cost_usd=capped_cost(0.0 if cost is None else float(cost)),
        unpriced_tokens=capped_tokens(unpriced),
        records=counts[4],
    )


def _from_plain(row: Sequence[Any]) -> UsageTotals | None:
    """The totals of a ``_PLAIN`` row; None if a sum is not an exact int."""
    *sums, cost = row
    counts = [0 if value is None else value for value in sums]
    if any(type(value) is not int for value in counts):
        return None  # a REAL: a row's kinds added up past 2**63 - 1
    input_, output, read, write, unpriced, records = counts
    return _totals((input_, output, read, write, records), unpriced, cost)


def _from_halved(row: Sequence[Any]) -> UsageTotals:
    *halves, cost = (0 if value is None else value for value in row)
    sums = [
        (int(high) << _HALF_BITS) + int(low)
        for high, low in zip(halves[::2], halves[1::2], strict=True)
    ]
    return _totals((*sums[:4], sums[8]), sum(sums[4:8]), cost)


def sum_usage(
    conn: sqlite3.Connection, where: str, params: Sequence[Any], *, by: str | None = None
) -> list[tuple[Any, UsageTotals]]:
    """``(key, totals)`` of the usage rows ``where`` selects, one per ``by`` value
    in its order (``by`` is a column; without it one row, whose key is None)."""
    head, tail = ("", where) if by is None else (f"{by}, ", f"{where} GROUP BY {by} ORDER BY {by}")
    plain = _plain_sums(conn, f"SELECT {head}{', '.join(_PLAIN)} FROM usage{tail}", params, by)
    if plain is not None:
        return plain
    rows = conn.execute(f"SELECT {head}{', '.join(_HALVED)} FROM usage{tail}", params)
    skip = int(by is not None)
    return [(row[0] if skip else None, _from_halved(row[skip:])) for row in rows]


def _plain_sums(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], by: str | None
) -> list[tuple[Any, UsageTotals]] | None:
    """The totals by SQLite's own sums; None if one of them overflowed."""
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        return None
    skip = int(by is not None)
    keyed: list[tuple[Any, UsageTotals]] = []
    for row in rows:
        totals = _from_plain(row[skip:])
        if totals is None:
            return None
        keyed.append((row[0] if skip else None, totals))
    return keyed
