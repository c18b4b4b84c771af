"""What the budget tests share: a price table that makes spend easy to count, and a filter."""

from __future__ import annotations

from typing import TypeVar

from events import Event, Published
from executor import parse_price_table

E = TypeVar("E", bound=Event)

#: $1 per input token.
PRICES = parse_price_table({"models": {"house-model": {"input": 1_000_000.0, "output": 0.0}}})


def events_of(items: list[Published], kind: type[E]) -> list[E]:
    """The events of ``kind`` among what was published, in order."""
    return [p.event for p in items if isinstance(p.event, kind)]
