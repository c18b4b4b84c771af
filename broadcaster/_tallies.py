"""What the metrics count between scrapes: plain values, turned into families when scraped."""

from __future__ import annotations

from typing import Final

import attrs

#: The ``model`` label of usage past the first ``max_models`` distinct names.
OTHER_MODEL: Final = "other"


@attrs.define(eq=False)
class ModelTotals:
    """Usage of one model: the four kinds of tokens, cost, unpriced tokens."""

    tokens: list[int] = attrs.field(factory=lambda: [0, 0, 0, 0])
    cost_usd: float = 0.0
    unpriced_tokens: int = 0


@attrs.define(eq=False)
class Histogram:
    """Cumulative-at-scrape histogram of task durations."""

    bounds: tuple[float, ...]
    counts: list[int] = attrs.field(init=False)
    total: int = 0
    sum: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
                return

    def buckets(self) -> list[tuple[str, float]]:
        result: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            result.append((_float_label(bound), running))
        result.append(("+Inf", self.total))
        return result


def _float_label(value: float) -> str:
    return repr(float(value))
