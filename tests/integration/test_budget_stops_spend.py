"""``on_budget`` against real subprocesses that keep reporting usage.

Each task is a python loop printing one usage line ($0.01 at the table below)
every 50 ms, 40 lines in all.  With ``pause`` (the default) the running tasks
spend on after the budget is crossed; with ``suspend`` and ``cancel`` what is
spent after the crossing is only what they had written before they were
stopped.  The figures are in docs/operations.md (budget section); see them with
``.venv/bin/pytest -s -q tests/integration/test_budget_stops_spend.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from events import Published, Publisher, TaskCancelled
from executor import CommandSpec, Executor, open_executor, parse_price_table

pytestmark = pytest.mark.integration

PY = sys.executable
TASKS = 3
LINES = 40
LINE_USD = 0.01
BUDGET_USD = 0.10
# $10 per million input tokens: a line of 1,000 input tokens costs $0.01.
PRICES = parse_price_table({"models": {"house": {"input": 10.0, "output": 0.0}}})
# Writes its pid, then prints a usage line every 50 ms.
REPORTER = f"""
import json, os, sys, time
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
for _ in range({LINES}):
    print(json.dumps({{"model": "house", "usage": {{"input_tokens": 1000}}}}), flush=True)
    time.sleep(0.05)
"""
# Spend after the crossing that ``suspend``/``cancel`` may show: the lines each
# task had written but runcast had not read yet when it stopped them (a 50 ms
# loop on a loaded machine: a few), plus the rest of the read that crossed.
BOUND_USD = TASKS * 5 * LINE_USD


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    try:
        return state(pid) != "Z"
    except FileNotFoundError:
        return False


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - real processes change state
        await trio.sleep(0.01)


async def _pids(tmp_path: Path) -> list[int]:
    files = [trio.Path(tmp_path / f"pid-{n}") for n in range(TASKS)]
    for path in files:
        while not await path.exists():  # noqa: ASYNC110 - a real child writes it
            await trio.sleep(0.01)
    return [int(await path.read_text()) for path in files]


def _submit(executor: Executor, tmp_path: Path) -> None:
    for n in range(TASKS):
        command = [PY, "-c", REPORTER, str(tmp_path / f"pid-{n}")]
        executor.submit_command(CommandSpec(id=f"t{n}", command=command, model="house"))


async def _spend_after_crossing(executor: Executor, tmp_path: Path) -> tuple[float, list[int]]:
    """Run to the crossing; what was spent beyond the budget 1 s later, and the pids."""
    _submit(executor, tmp_path)
    pids = await _pids(tmp_path)
    await _until(lambda: executor.is_paused)
    await trio.sleep(1.0)
    return executor.spent_usd - BUDGET_USD, pids


async def test_pause_lets_running_commands_spend_on(tmp_path: Path) -> None:
    publisher = Publisher()
    with trio.fail_after(30):
        async with open_executor(
            publisher, concurrency=TASKS, budget_usd=BUDGET_USD, prices=PRICES
        ) as executor:
            overshoot, _ = await _spend_after_crossing(executor, tmp_path)
            await executor.join()
    final = executor.spent_usd
    print(f"\npause: +${overshoot:.2f} 1 s after crossing, ${final:.2f} in all")
    assert overshoot > 2 * BOUND_USD  # up to 20 lines a task in that second
    assert final == pytest.approx(TASKS * LINES * LINE_USD)


async def test_suspend_stops_spend_until_raised_and_resumed(tmp_path: Path) -> None:
    publisher = Publisher()
    with trio.fail_after(30):
        async with open_executor(
            publisher, concurrency=TASKS, budget_usd=BUDGET_USD, prices=PRICES, on_budget="suspend"
        ) as executor:
            overshoot, pids = await _spend_after_crossing(executor, tmp_path)
            assert all(state(pid) == "T" for pid in pids)
            held = executor.spent_usd
            await trio.sleep(0.5)
            assert executor.spent_usd == held  # nothing more while stopped
            executor.set_budget(10.0)
            executor.resume()
            await _until(lambda: all(not alive(pid) or state(pid) != "T" for pid in pids))
            await executor.join()
    print(f"\nsuspend: +${overshoot:.2f} after crossing (bound ${BOUND_USD:.2f})")
    assert 0 <= overshoot <= BOUND_USD
    assert executor.spent_usd == pytest.approx(TASKS * LINES * LINE_USD)  # they finished
    assert all(executor.task(f"t{n}").state == "completed" for n in range(TASKS))


async def test_cancel_stops_spend_and_reaps_the_groups(tmp_path: Path) -> None:
    publisher = Publisher()
    seen: list[Published] = []
    publisher.add_listener(seen.append)
    with trio.fail_after(30):
        async with open_executor(
            publisher, concurrency=TASKS, budget_usd=BUDGET_USD, prices=PRICES, on_budget="cancel"
        ) as executor:
            overshoot, pids = await _spend_after_crossing(executor, tmp_path)
    print(f"\ncancel: +${overshoot:.2f} after crossing (bound ${BOUND_USD:.2f})")
    assert 0 <= overshoot <= BOUND_USD
    assert not any(alive(pid) for pid in pids)
    cancelled = [p.event for p in seen if isinstance(p.event, TaskCancelled)]
    assert sorted(e.task_id for e in cancelled) == [f"t{n}" for n in range(TASKS)]
    assert all(e.reason.startswith("cancelled by budget exhausted") for e in cancelled)


async def test_an_operator_suspend_stops_continues_and_still_reaps(tmp_path: Path) -> None:
    publisher = Publisher()
    with trio.fail_after(30):
        async with open_executor(publisher, concurrency=TASKS) as executor:
            _submit(executor, tmp_path)
            pids = await _pids(tmp_path)
            executor.pause(suspend=True)
            await _until(lambda: all(state(pid) == "T" for pid in pids))
            executor.resume()
            await _until(lambda: all(state(pid) != "T" for pid in pids))
            executor.pause(suspend=True)
            await _until(lambda: all(state(pid) == "T" for pid in pids))
            executor.cancel_all()  # a stopped group is still reaped
    assert not any(alive(pid) for pid in pids)
