"""What a resumed session hands the executor: earlier spend and earlier attempts."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events import BudgetExhausted, Published, Publisher, TaskRetrying
from executor import (
    BudgetExceededError,
    InvalidArgumentError,
    TaskContext,
    TaskFailedError,
    open_executor,
)


async def fail(ctx: TaskContext) -> None:
    await trio.sleep(1)
    raise RuntimeError(f"attempt {ctx.attempt} failed")


async def test_prior_spend_counts_against_the_budget_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    seen: list[Published] = []
    publisher.add_listener(seen.append)
    async with open_executor(publisher, budget_usd=1.0, spent_usd=1.25) as executor:
        assert executor.spent_usd == 1.25
        assert executor.is_paused
        with pytest.raises(BudgetExceededError):
            executor.resume()
        executor.set_budget(2.0)
        executor.resume()
        assert not executor.is_paused
    assert any(isinstance(item.event, BudgetExhausted) for item in seen)


async def test_attempts_used_count_against_retries(autojump_clock: trio.testing.MockClock) -> None:
    publisher = Publisher()
    seen: list[Published] = []
    publisher.add_listener(seen.append)
    async with open_executor(publisher, retry_backoff=1.0) as executor:
        handle = executor.submit(fail, task_id="t", retries=2, attempts_used=2)
        with pytest.raises(TaskFailedError, match="attempt 3 failed"):
            await handle.wait()
    info = executor.task("t")
    assert info.attempts == 3
    assert not [item for item in seen if isinstance(item.event, TaskRetrying)]


async def test_bad_resume_arguments_are_refused() -> None:
    publisher = Publisher()
    with pytest.raises(InvalidArgumentError, match="spent_usd"):
        async with open_executor(publisher, spent_usd=-1.0):
            pass
    async with open_executor(publisher) as executor:
        with pytest.raises(InvalidArgumentError, match="attempts_used"):
            executor.submit(fail, attempts_used=-1)
