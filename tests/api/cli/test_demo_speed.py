"""``runcast demo --speed``: the same workload in compressed time, and its queue depth."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from api import ServerConfig
from api.cli._demo import DemoOptions, simulate
from api.cli._main import build_parser
from api.server._exceptions import ConfigError
from events import Published, Publisher
from executor import open_executor


async def _record(speed: float, seconds: float) -> list[tuple[float, str, str]]:
    """(trio time, event name, task id) of every event the demo causes in ``seconds``."""
    publisher = Publisher()
    seen: list[tuple[float, str, str]] = []

    def note(item: Published) -> None:
        seen.append((trio.current_time(), item.event_name, item.event.task_id))

    publisher.add_listener(note)
    options = DemoOptions(server=ServerConfig(), speed=speed, budget_usd=0.05, budget_step_usd=0.05)
    async with open_executor(
        publisher, concurrency=options.concurrency, budget_usd=0.05, retry_backoff=1.0 / speed
    ) as executor:
        start = trio.current_time()
        with trio.move_on_after(seconds):
            await simulate(executor, publisher, options, random.Random(7))
        executor.cancel_all(reason="test over")
    return [(t - start, name, task_id) for t, name, task_id in seen if t - start < seconds]


async def test_speed_compresses_the_demo_s_time(autojump_clock: trio.testing.MockClock) -> None:
    slow = await _record(speed=1.0, seconds=400.0)
    fast = await _record(speed=4.0, seconds=100.0)
    # The same events about the same tasks, in the same order, 4x sooner:
    # turns, failures, retries, budget pauses and the filler all scaled.
    assert [(name, task_id) for _, name, task_id in fast] == [
        (name, task_id) for _, name, task_id in slow
    ]
    assert len(fast) > 200
    assert {name for _, name, _ in fast} >= {
        "task_started",
        "task_usage",
        "task_retrying",
        "task_failed",
        "budget_exhausted",
    }
    for (fast_t, *_), (slow_t, *_) in zip(fast, slow, strict=True):
        assert fast_t == pytest.approx(slow_t / 4, abs=1e-6)


def test_queue_depth_follows_concurrency_unless_given() -> None:
    server = ServerConfig()
    assert DemoOptions(server=server).queue_depth == 6  # the default demo, as before
    assert DemoOptions(server=server, concurrency=64).queue_depth == 96
    assert DemoOptions(server=server, concurrency=64, queue_depth=3).queue_depth == 3


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), True, "2"])
def test_speed_must_be_a_finite_positive_number(bad: object) -> None:
    with pytest.raises(ConfigError, match="demo speed must be a"):
        DemoOptions(server=ServerConfig(), speed=bad)  # type: ignore[arg-type]


def test_the_cli_passes_speed_and_refuses_zero(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["demo", "--speed", "4"]).speed == 4.0
    assert parser.parse_args(["demo"]).speed == 1.0
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--speed", "0"])
    assert "--speed: must be a finite number > 0, got 0" in capsys.readouterr().err
