"""Usage recording, cost sources and the budget, through the Python task API."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from _budget_support import PRICES, events_of

from events import (
    BudgetChanged,
    BudgetExhausted,
    BudgetWarning,
    ExecutorPaused,
    Published,
    Publisher,
    TaskUsage,
)
from executor import (
    Budget,
    BudgetExceededError,
    InvalidArgumentError,
    TaskContext,
    open_executor,
)


async def spend(ctx: TaskContext, dollars: list[float]) -> None:
    """Each increment costs ``dollars[i]`` USD at the house price ($1 per input token)."""
    for amount in dollars:
        await ctx.wait_if_paused()
        ctx.record_usage(model="house-model", input_tokens=int(amount))
        await trio.sleep(1)


async def test_usage_events_carry_cost_and_source(
    publisher: Publisher, items: list[Published]
) -> None:
    async def agent(ctx: TaskContext) -> None:
        ctx.record_usage(model="claude-sonnet-4-5", provider="anthropic", input_tokens=1000)
        ctx.record_usage(model="claude-sonnet-4-5", output_tokens=10, cost_usd=0.25)
        ctx.record_usage(model="house-model", input_tokens=2)
        ctx.record_usage(model="acme-9000", input_tokens=7, cache_read_tokens=3)

    async with open_executor(publisher, prices=PRICES) as executor:
        await executor.submit(agent, task_id="a").wait()
    usages = events_of(items, TaskUsage)
    assert [u.cost_source for u in usages] == ["computed", "reported", "user_table", "unpriced"]
    assert usages[0].cost_usd == pytest.approx(0.003)
    assert usages[3].cost_usd is None
    info = executor.task("a")
    assert (info.input_tokens, info.output_tokens, info.cache_read_tokens) == (1009, 10, 3)
    assert info.unpriced_tokens == 10
    assert info.estimated_cost_usd == pytest.approx(0.003 + 0.25 + 2.0)
    assert executor.spent_usd == pytest.approx(info.estimated_cost_usd)


async def test_task_default_model_is_used_when_none_given(
    publisher: Publisher, items: list[Published]
) -> None:
    async def agent(ctx: TaskContext) -> None:
        ctx.record_usage(model="", input_tokens=3)

    async with open_executor(publisher, prices=PRICES) as executor:
        executor.submit(agent, model="house-model", provider="acme")
    [usage] = events_of(items, TaskUsage)
    assert (usage.model, usage.provider, usage.cost_usd) == ("house-model", "acme", 3.0)


async def test_bad_usage_is_refused_naming_the_field(publisher: Publisher) -> None:
    async def agent(ctx: TaskContext) -> None:
        ctx.record_usage(model="m", output_tokens=-1)

    async with open_executor(publisher) as executor:
        handle = executor.submit(agent)
        with pytest.raises(Exception, match="failed") as caught:
            await handle.wait()
    assert isinstance(caught.value.__cause__, InvalidArgumentError)
    assert "output_tokens must be >= 0" in str(caught.value)


async def test_budget_warns_once_then_pauses_itself_and_refuses_resume(
    publisher: Publisher, items: list[Published], autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher, prices=PRICES, budget_usd=10.0, concurrency=1) as executor:
        first = executor.submit(spend, [5, 3, 1, 1, 1], task_id="first")
        queued = executor.submit(spend, [1], task_id="queued")
        await trio.sleep(2.5)  # $9 spent: warned once, not exhausted
        assert len(events_of(items, BudgetWarning)) == 1
        assert not executor.is_paused
        await trio.sleep(1)  # the 4th increment reaches $10
        assert executor.is_paused
        assert executor.spent_usd == pytest.approx(10.0)
        with pytest.raises(BudgetExceededError, match=r"spent \$10.0000 of the \$10.0000"):
            executor.resume()
        await trio.sleep(100)
        # The running task waits at its pause point; the queued one never started.
        assert first.state == "running"
        assert queued.state == "queued"
        executor.set_budget(20.0)
        assert executor.is_paused  # raising the budget is not resuming
        executor.resume()
    assert [t.state for t in executor.tasks()] == ["completed", "completed"]
    [warning] = events_of(items, BudgetWarning)
    assert (warning.budget_usd, warning.spent_usd, warning.threshold) == (10.0, 8.0, 0.8)
    [exhausted] = events_of(items, BudgetExhausted)
    assert exhausted.spent_usd == pytest.approx(10.0)
    [paused] = events_of(items, ExecutorPaused)
    assert paused.by == "budget"
    assert "budget exhausted" in paused.reason
    changes = events_of(items, BudgetChanged)
    assert [(c.budget_usd, c.by) for c in changes] == [(10.0, "startup"), (20.0, "operator")]
    assert executor.spent_usd == pytest.approx(12.0)
    assert len(events_of(items, BudgetWarning)) == 1  # $12 < 80% of $20


async def test_lowering_the_budget_below_the_spend_pauses(
    publisher: Publisher, items: list[Published]
) -> None:
    async with open_executor(publisher, prices=PRICES) as executor:
        await executor.submit(spend, [4]).wait()
        executor.set_budget(3.0)
        assert executor.is_paused
        with pytest.raises(BudgetExceededError):
            executor.resume()
        executor.set_budget(None)
        executor.resume()
    assert len(events_of(items, BudgetExhausted)) == 1
    assert len(events_of(items, BudgetWarning)) == 1


async def test_unpriced_usage_does_not_spend_the_budget(publisher: Publisher) -> None:
    async def agent(ctx: TaskContext) -> None:
        ctx.record_usage(model="acme-9000", input_tokens=10**9)

    async with open_executor(publisher, budget_usd=0.01) as executor:
        await executor.submit(agent).wait()
        assert not executor.is_paused
        assert executor.spent_usd == 0
        assert executor.tasks()[0].unpriced_tokens == 10**9


def test_budget_ledger_reports_each_crossing_once() -> None:
    budget = Budget(10.0)
    assert budget.spend(7.0) == []
    warning, exhausted = budget.spend(8.0)  # straight past both thresholds
    assert isinstance(warning, BudgetWarning)
    assert isinstance(exhausted, BudgetExhausted)
    assert budget.spend(1.0) == []
    assert budget.exceeded
    assert budget.set_limit(100.0) == []  # re-armed, nothing crossed
    assert not budget.exceeded
    assert [type(e) for e in budget.spend(70.0)] == [BudgetWarning]
    with pytest.raises(InvalidArgumentError, match="budget_usd must be finite"):
        budget.set_limit(float("nan"))


async def test_raising_the_budget_still_below_the_spend_is_exhausted_anew(
    publisher: Publisher, items: list[Published]
) -> None:
    async with open_executor(publisher, prices=PRICES, budget_usd=1.0) as executor:
        await executor.submit(spend, [2]).wait()  # $2 of a $1 budget: exhausted, paused
        assert executor.is_paused
        executor.set_budget(1.5)  # raised, still below the spend
        executor.set_budget(1.5)  # the same limit again: nothing new to say
        assert executor.is_paused
        with pytest.raises(BudgetExceededError, match=r"spent \$2.0000 of the \$1.5000"):
            executor.resume()
        executor.set_budget(None)
        executor.resume()
    exhausted = [(e.budget_usd, e.spent_usd) for e in events_of(items, BudgetExhausted)]
    assert exhausted == [(1.0, 2.0), (1.5, 2.0)]
    [paused] = events_of(items, ExecutorPaused)  # still the one budget pause
    assert paused.by == "budget"
    assert len(events_of(items, BudgetWarning)) == 1


def test_budget_ledger_reports_each_new_exhausted_limit() -> None:
    budget = Budget(10.0)
    assert [type(e) for e in budget.spend(12.0)] == [BudgetWarning, BudgetExhausted]
    [raised] = budget.set_limit(11.0)
    assert isinstance(raised, BudgetExhausted)
    assert (raised.budget_usd, raised.spent_usd) == (11.0, 12.0)
    assert budget.set_limit(11.0) == []
    [lowered] = budget.set_limit(5.0)
    assert isinstance(lowered, BudgetExhausted)
    assert lowered.budget_usd == 5.0
    assert budget.spend(1.0) == []  # further spend under the same limit: said already
