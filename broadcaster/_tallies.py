"""What the metrics count between scrapes: plain values, turned into families when scraped."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import attrs

#: The ``model`` and ``provider`` labels of usage past the first ``max_models``
#: distinct (model, provider) pairs.
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


@attrs.define(eq=False)
class QueueWaits:
    """Time from ``task_queued`` to ``task_started``, one observation per attempt.

    The time each waiting task was queued at is kept until it starts, ends or is
    cancelled, for at most ``max_waiting`` tasks at once; a task queued while
    that many wait is not measured, and counted in ``untracked``.
    """

    max_waiting: int
    histogram: Histogram
    untracked: int = 0
    _queued_at: dict[str, datetime] = attrs.field(factory=dict)

    @property
    def waiting(self) -> int:
        """Tasks whose queue time is kept now."""
        return len(self._queued_at)

    def queued(self, task_id: str, at: datetime) -> None:
        queued_at = self._queued_at
        if task_id in queued_at:
            return  # a duplicate: the wait began at the first
        if len(queued_at) >= self.max_waiting:
            self.untracked += 1
            return
        queued_at[task_id] = at

    def started(self, task_id: str, at: datetime) -> None:
        queued_at = self._queued_at.pop(task_id, None)
        if queued_at is not None:
            # Event times are wall-clock: a clock stepped back reads as no wait.
            self.histogram.observe(max(0.0, (at - queued_at).total_seconds()))

    def forget(self, task_id: str) -> None:
        """The task ended (or went back to retrying) without starting from the queue."""
        if self._queued_at:
            self._queued_at.pop(task_id, None)


def _float_label(value: float) -> str:
    return repr(float(value))
