"""The executor's spend: pricing each usage record, the ledger, and budget events."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from events import Actor, BudgetChanged, BudgetExhausted, BudgetWarning, Event, TaskUsage

from ._record import TaskRecord
from .pricing import Budget, CostCalculator
from .usage import TokenCounts

#: ``Executor.pause`` (``by``, ``reason``): what an exhausted budget calls.
PauseFunction = Callable[..., None]


@attrs.define(eq=False)
class Spending:
    """Prices usage, adds it to the task and the ledger, and says when a budget is crossed."""

    _publish: Callable[[Event], object] = attrs.field(repr=False)
    _pause: PauseFunction = attrs.field(repr=False)
    costs: CostCalculator = attrs.field(repr=False)
    budget: Budget

    def record_usage(
        self,
        record: TaskRecord,
        model: str,
        provider: str | None,
        tokens: TokenCounts,
        reported_usd: float | None,
        parts: Sequence[TokenCounts] = (),
        *,
        source: str = "",
    ) -> TaskUsage:
        """``parts``: the records ``tokens`` sums, priced one by one, counted in ``records``."""
        model = model or record.model
        provider = provider if provider is not None else record.provider
        cost = self.costs.cost(model, provider, tokens, reported_usd, parts=parts)
        event = TaskUsage(
            task_id=record.task_id,
            model=model,
            provider=provider,
            input_tokens=tokens.input,
            output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read,
            cache_write_tokens=tokens.cache_write,
            cost_usd=cost.usd,
            cost_source=cost.source,
            records=max(1, len(parts)),
            source=source,
        )
        record.tokens += tokens
        if cost.usd is None:
            record.unpriced_tokens += tokens.total
        self._publish(event)
        if cost.usd is not None:
            record.cost_usd += cost.usd
            self.announce(self.budget.spend(cost.usd))
        return event

    def set_limit(self, usd: float | None, by: Actor) -> None:
        """Change (or with None remove) the checked budget; ``budget_changed`` goes first."""
        event = BudgetChanged(budget_usd=usd, by=by)
        crossings = self.budget.set_limit(usd)
        self._publish(event)
        self.announce(crossings)

    def announce(self, crossings: list[BudgetWarning | BudgetExhausted]) -> None:
        """Publish each crossing; an exhausted budget pauses the executor."""
        for event in crossings:
            self._publish(event)
            if isinstance(event, BudgetExhausted):
                self._pause(
                    by="budget",
                    reason=f"budget exhausted: spent ${event.spent_usd:.4f} "
                    f"of ${event.budget_usd:.4f}",
                )
