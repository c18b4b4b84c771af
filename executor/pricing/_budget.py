"""The spend ledger: what has been spent against an optional budget, and when to say so."""

from __future__ import annotations

import math

import attrs

from events import BudgetExhausted, BudgetWarning

from .._exceptions import InvalidArgumentError

BUDGET_WARNING_THRESHOLD = 0.8


def check_budget(usd: float | None) -> float | None:
    """None, or a finite USD amount >= 0; a clear error otherwise."""
    if usd is None:
        return None
    if isinstance(usd, bool) or not isinstance(usd, int | float):
        raise InvalidArgumentError(f"budget_usd must be a number or None, got {usd!r}")
    if not math.isfinite(usd) or usd < 0:
        raise InvalidArgumentError(f"budget_usd must be finite and >= 0, got {usd}")
    return float(usd)


def check_spent(usd: float) -> float:
    """A finite USD amount >= 0 already spent; a clear error otherwise."""
    if isinstance(usd, bool) or not isinstance(usd, int | float):
        raise InvalidArgumentError(f"spent_usd must be a number, got {usd!r}")
    if not math.isfinite(usd) or usd < 0:
        raise InvalidArgumentError(f"spent_usd must be finite and >= 0, got {usd}")
    return float(usd)


@attrs.define
class Budget:
    """Warns once per budget at 80 %, and reports exhaustion once per crossing and
    once per new limit the spend has already reached."""

    limit: float | None = None
    spent: float = 0.0
    _warned: bool = False
    _exhausted: bool = False

    def __attrs_post_init__(self) -> None:
        # Not an attrs converter: that would route every assignment (one per
        # usage record) through attrs' setattr hooks.
        self.limit = check_budget(self.limit)

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def spend(self, usd: float) -> list[BudgetWarning | BudgetExhausted]:
        self.spent += usd
        return self.crossings()

    def set_limit(self, usd: float | None) -> list[BudgetWarning | BudgetExhausted]:
        """Change the limit; thresholds no longer crossed under it are armed again.

        A different limit the spend has already reached is exhausted anew: raised
        from $1 to $1.50 with $2 spent, ``budget_exhausted`` says so with $1.50, and
        the executor stays paused by the budget. Setting the same limit again says
        nothing new.
        """
        previous = self.limit
        self.limit = check_budget(usd)
        if self.limit is None or self.spent < BUDGET_WARNING_THRESHOLD * self.limit:
            self._warned = False
        if self.limit is None or self.spent < self.limit or self.limit != previous:
            self._exhausted = False
        return self.crossings()

    def crossings(self) -> list[BudgetWarning | BudgetExhausted]:
        """The warning and exhaustion events newly due, in that order."""
        limit = self.limit
        due: list[BudgetWarning | BudgetExhausted] = []
        if limit is None:
            return due
        if not self._warned and self.spent >= BUDGET_WARNING_THRESHOLD * limit:
            self._warned = True
            due.append(
                BudgetWarning(
                    budget_usd=limit, spent_usd=self.spent, threshold=BUDGET_WARNING_THRESHOLD
                )
            )
        if not self._exhausted and self.spent >= limit:
            self._exhausted = True
            due.append(BudgetExhausted(budget_usd=limit, spent_usd=self.spent))
        return due
