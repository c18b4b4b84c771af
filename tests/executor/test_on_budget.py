"""What an exhausted budget and a suspending pause do to running tasks (MockClock).

Process groups here are made-up numbers: the signals the executor would send
them are recorded instead (``signals``); tests/integration/test_budget_stops_spend.py
sends real ones.
"""

from __future__ import annotations

import signal

import pytest
import structlog.testing
import trio
import trio.testing
from _budget_support import PRICES, events_of

from events import ExecutorPaused, Published, Publisher, TaskCancelled, TaskFailed
from executor import (
    ON_BUDGET,
    InvalidArgumentError,
    TaskContext,
    TaskFailedError,
    open_executor,
)
from executor import _suspension as suspension_module


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """(pgid, signal name) of every signal the suspension sends, in order."""
    sent: list[tuple[int, str]] = []

    def record(pgid: int, signum: signal.Signals) -> None:
        sent.append((pgid, signum.name))

    monkeypatch.setattr(suspension_module, "signal_group_logged", record)
    return sent


async def spend_forever(ctx: TaskContext, pgid: int | None) -> None:
    """Spends $1 a second without pausing itself, as a command keeps reporting usage."""
    if pgid is not None:
        ctx.add_process_group(pgid)
    while True:
        ctx.record_usage(model="house-model", input_tokens=1)
        await trio.sleep(1)


async def test_on_budget_cancel_cancels_running_tasks_naming_the_budget(
    publisher: Publisher, items: list[Published], autojump_clock: trio.testing.MockClock
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with open_executor(
            publisher, concurrency=2, budget_usd=5.0, prices=PRICES, on_budget="cancel"
        ) as executor:
            for name in ("a", "b", "queued"):
                executor.submit(spend_forever, None, task_id=name)
            await trio.sleep(10)
            assert executor.is_paused
            assert executor.task("queued").state == "queued"
            spent_at_stop = executor.spent_usd
            await trio.sleep(10)
            assert executor.spent_usd == spent_at_stop == 5.0  # nothing more was spent
            executor.cancel("queued")
    cancelled = {e.task_id: e.reason for e in events_of(items, TaskCancelled)}
    assert set(cancelled) == {"a", "b", "queued"}
    for task_id in ("a", "b"):
        assert cancelled[task_id].startswith("cancelled by budget exhausted: spent $5.0000")
    warnings = [entry for entry in logs if entry["event"] == "executor paused itself"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert (warnings[0]["by"], warnings[0]["tasks_cancelled"]) == ("budget", 2)


async def test_on_budget_pause_lets_running_tasks_spend_on(
    publisher: Publisher, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher, budget_usd=5.0, prices=PRICES) as executor:
        executor.submit(spend_forever, None, task_id="a")
        await trio.sleep(10)
        assert executor.is_paused
        assert executor.spent_usd > 5.0  # today's behaviour, the default
        executor.cancel("a")


async def test_on_budget_suspend_stops_groups_and_resume_continues_them(
    publisher: Publisher,
    items: list[Published],
    signals: list[tuple[int, str]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_executor(
        publisher, concurrency=2, budget_usd=3.0, prices=PRICES, on_budget="suspend"
    ) as executor:
        executor.submit(spend_forever, 101, task_id="a")
        await trio.sleep(2.5)  # $3 spent at t=2
        assert executor.is_paused
        assert executor.is_suspended
        assert signals == [(101, "SIGSTOP")]
        pause = events_of(items, ExecutorPaused)[-1]
        assert pause.by == "budget"
        assert "budget exhausted" in pause.reason
        executor.set_budget(100.0)
        assert signals == [(101, "SIGSTOP")]  # raising the budget does not resume
        executor.resume()
        assert signals == [(101, "SIGSTOP"), (101, "SIGCONT")]
        assert not executor.is_suspended
        executor.cancel("a")


async def test_a_group_started_while_suspended_is_stopped_at_once(
    publisher: Publisher, signals: list[tuple[int, str]], autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher) as executor:
        executor.submit(spend_forever, 7, task_id="a")
        await trio.sleep(0.5)
        executor.pause(suspend=True)
        executor.submit(spend_forever, 8, task_id="b")  # queued: paused
        executor.submit(_group_later, 9, task_id="late")
        executor.resume()
        executor.pause(suspend=True)
        await trio.sleep(2)
        assert signals[-1] == (9, "SIGSTOP")
        executor.resume()
        assert (9, "SIGCONT") in signals
        executor.cancel_all()


async def _group_later(ctx: TaskContext, pgid: int) -> None:
    await trio.sleep(1)  # the executor is paused and suspending by then
    ctx.add_process_group(pgid)
    await trio.sleep_forever()


async def test_a_second_pause_that_suspends_stops_what_a_plain_pause_let_run(
    publisher: Publisher,
    items: list[Published],
    signals: list[tuple[int, str]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_executor(publisher) as executor:
        executor.submit(spend_forever, 5, task_id="a")
        await trio.sleep(0.5)
        executor.pause()
        assert signals == []
        executor.pause(suspend=True)
        assert signals == [(5, "SIGSTOP")]
        assert len(events_of(items, ExecutorPaused)) == 1  # still one pause
        executor.resume()
        assert signals == [(5, "SIGSTOP"), (5, "SIGCONT")]
        executor.cancel("a")


async def test_a_suspended_task_timeout_is_held_for_the_suspended_time(
    publisher: Publisher,
    items: list[Published],
    signals: list[tuple[int, str]],
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_executor(publisher, retry_backoff=0.0) as executor:
        handle = executor.submit(spend_forever, 3, task_id="a", timeout=10.0)
        await trio.sleep(4)
        executor.pause(suspend=True)
        await trio.sleep(100)  # far past the 10 s timeout, but stopped
        assert executor.task("a").state == "running"
        executor.resume()
        start = trio.current_time()
        assert events_of(items, TaskFailed) == []
        with pytest.raises(TaskFailedError):
            await handle.wait()
        # It had 6 s left when it was stopped.
        assert trio.current_time() - start == pytest.approx(6.0, abs=0.01)
    assert events_of(items, TaskFailed)[0].timed_out


async def test_a_plain_pause_does_not_hold_timeouts(
    publisher: Publisher, items: list[Published], autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher) as executor:
        executor.submit(spend_forever, None, task_id="a", timeout=10.0)
        await trio.sleep(4)
        executor.pause()
        await trio.sleep(7)
        assert executor.task("a").state == "failed"


async def test_suspend_on_pause_is_the_default_an_explicit_suspend_overrides(
    publisher: Publisher, signals: list[tuple[int, str]], autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher, suspend_on_pause=True) as executor:
        executor.submit(spend_forever, 4, task_id="a")
        await trio.sleep(0.5)
        executor.pause(suspend=False)
        assert signals == []
        executor.resume()
        executor.pause()
        assert signals == [(4, "SIGSTOP")]
        executor.resume()
        executor.cancel("a")


async def test_a_zero_budget_starts_paused_saying_why(
    publisher: Publisher, items: list[Published], autojump_clock: trio.testing.MockClock
) -> None:
    async with open_executor(publisher, budget_usd=0.0, prices=PRICES) as executor:
        executor.submit(spend_forever, None, task_id="a")
        await trio.sleep(1)
        assert executor.is_paused
        assert executor.task("a").state == "queued"
        executor.cancel("a")
    pause = events_of(items, ExecutorPaused)[0]
    assert pause.by == "budget"
    assert pause.reason == "budget exhausted: spent $0.0000 of $0.0000"


async def test_bad_on_budget_and_suspend_values_are_refused(publisher: Publisher) -> None:
    with pytest.raises(InvalidArgumentError, match=r"on_budget must be one of .*'stop'"):
        async with open_executor(publisher, on_budget="stop"):  # type: ignore[arg-type]
            pass
    async with open_executor(publisher) as executor:
        with pytest.raises(InvalidArgumentError, match="suspend must be a bool"):
            executor.pause(suspend="yes")  # type: ignore[arg-type]
        assert not executor.is_paused
    assert ON_BUDGET == ("pause", "suspend", "cancel")
