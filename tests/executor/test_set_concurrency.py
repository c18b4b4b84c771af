"""``Executor.set_concurrency``: raising starts queued tasks at once, lowering cancels nothing."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from events import ConcurrencyChanged, Event, Published, Publisher
from executor import MAX_CONCURRENCY, Executor, InvalidArgumentError, TaskContext, open_executor


async def held(ctx: TaskContext, gate: trio.Event) -> None:
    await gate.wait()


def _states(executor: Executor) -> list[str]:
    return [t.state for t in executor.tasks()]


def _recorded(publisher: Publisher) -> list[Event]:
    seen: list[Event] = []

    def listener(item: Published) -> None:
        seen.append(item.event)

    publisher.add_listener(listener)
    return seen


async def test_raising_starts_queued_tasks_at_once(autojump_clock: trio.testing.MockClock) -> None:
    publisher = Publisher()
    seen = _recorded(publisher)
    gate = trio.Event()
    async with open_executor(publisher, concurrency=1) as executor:
        for index in range(4):
            executor.submit(held, gate, task_id=f"t{index}")
        await trio.testing.wait_all_tasks_blocked()
        assert executor.running_count == 1
        executor.set_concurrency(3, reason="more")
        assert executor.running_count == 3  # started synchronously
        assert executor.concurrency == 3
        gate.set()
    changes = [e for e in seen if isinstance(e, ConcurrencyChanged)]
    assert changes == [ConcurrencyChanged(concurrency=3, previous=1, by="operator", reason="more")]


async def test_lowering_lets_running_tasks_finish_and_starts_none_until_below(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gates = [trio.Event() for _ in range(5)]
    async with open_executor(Publisher(), concurrency=3) as executor:
        for index, gate in enumerate(gates):
            executor.submit(held, gate, task_id=f"t{index}")
        await trio.testing.wait_all_tasks_blocked()
        executor.set_concurrency(1)
        assert _states(executor) == ["running"] * 3 + ["queued"] * 2  # nothing cancelled
        gates[0].set()
        await trio.testing.wait_all_tasks_blocked()
        assert executor.running_count == 2  # still above the new limit: none starts
        gates[1].set()
        await trio.testing.wait_all_tasks_blocked()
        assert executor.running_count == 1
        gates[2].set()
        await trio.testing.wait_all_tasks_blocked()
        assert _states(executor) == ["completed"] * 3 + ["running", "queued"]
        assert executor._lifecycle.workers == 1  # the extra workers ended once idle
        for gate in gates:
            gate.set()


@pytest.mark.parametrize("bad", [0, -1, MAX_CONCURRENCY + 1, 2.5, True, "4", None])
async def test_bad_values_are_refused_and_change_nothing(bad: object) -> None:
    publisher = Publisher()
    seen = _recorded(publisher)
    async with open_executor(publisher, concurrency=2) as executor:
        with pytest.raises(
            InvalidArgumentError, match=f"concurrency must be an int from 1 to {MAX_CONCURRENCY}"
        ):
            executor.set_concurrency(bad)  # type: ignore[arg-type]
        assert executor.concurrency == 2
    assert not any(isinstance(e, ConcurrencyChanged) for e in seen)
