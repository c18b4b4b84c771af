"""``runcast demo``: the server with a simulated LLM workload that never ends.

Simulated agents record usage on several models (Anthropic ones with prompt
caching, OpenAI, Gemini, and one local model no price table knows), print a
few lines, sometimes fail and retry, and together burn through a small budget
which the demo raises again each time it pauses the executor. ``speed``
compresses the demo's time (every simulated wait divided by it), so a load or
memory test gets hours of the default demo's events in minutes.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
from typing import TextIO

import attrs
import structlog
import trio

from events import BudgetExhausted, Published, Publisher
from executor import BudgetExceededError, Executor, TaskContext

from .._stack import StackSettings, open_stack
from ..server import ConfigError, ServerConfig
from ._run import announce
from ._signals import watch_stop_signals

log = structlog.get_logger("runcast.api")


@attrs.frozen
class SimulatedModel:
    name: str
    provider: str | None
    caches: bool
    output_ratio: float


MODELS = (
    SimulatedModel("claude-sonnet-4-5", "anthropic", caches=True, output_ratio=0.25),
    SimulatedModel("claude-haiku-4-5", "anthropic", caches=True, output_ratio=0.3),
    SimulatedModel("gpt-4o-mini", "openai", caches=False, output_ratio=0.4),
    SimulatedModel("gemini-2.5-flash", "google", caches=False, output_ratio=0.35),
    SimulatedModel("local-llama-3-8b", None, caches=False, output_ratio=0.5),
)
JOBS = ("summarise", "triage", "review", "translate", "extract", "classify", "draft")


class SimulatedFailure(RuntimeError):
    """A simulated agent error (rate limit, tool failure) that a retry may clear."""


def _queue_depth(options: DemoOptions) -> int:
    # Enough waiting tasks to refill every slot between two of the filler's
    # rounds; 6 at the default concurrency of 4.
    return max(6, options.concurrency * 3 // 2)


def _positive_speed(_options: DemoOptions, _attribute: object, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"demo speed must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"demo speed must be a finite number > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class DemoOptions:
    server: ServerConfig
    interval: float = 10.0
    concurrency: int = 4
    budget_usd: float = 0.50
    budget_step_usd: float = 0.50
    #: Tasks kept waiting in the executor's queue (default: 1.5x the concurrency, >= 6).
    queue_depth: int = attrs.field(default=attrs.Factory(_queue_depth, takes_self=True))
    failure_rate: float = 0.12
    seed: int | None = None
    #: Seconds the budget stays exhausted (executor paused) before the demo raises it.
    budget_pause_seconds: float = 8.0
    #: How many times faster than real time the simulation runs: every simulated
    #: wait (agent turns, failures, retry backoff, the budget pause, the filler's
    #: round) is divided by it.
    speed: float = attrs.field(default=1.0, validator=_positive_speed)

    def stack_settings(self) -> StackSettings:
        """The stack the demo serves and simulates on (retry back-off at its speed)."""
        return StackSettings(
            server=self.server,
            concurrency=self.concurrency,
            budget_usd=self.budget_usd,
            interval=self.interval,
            retry_backoff=1.0 / self.speed,
        )


async def simulated_agent(
    ctx: TaskContext, model: SimulatedModel, rng: random.Random, speed: float = 1.0
) -> str:
    """A few turns of an agent: each turn records one usage increment."""
    turns = rng.randint(3, 12)
    context = rng.randint(1_000, 6_000)
    for turn in range(1, turns + 1):
        await ctx.wait_if_paused()
        await trio.sleep(rng.uniform(0.4, 1.6) / speed)
        fresh = rng.randint(100, 1_200)
        cached = context if model.caches and turn > 1 else 0
        ctx.record_usage(
            model=model.name,
            provider=model.provider,
            input_tokens=fresh if model.caches else fresh + context,
            output_tokens=int(fresh * model.output_ratio) + rng.randint(20, 400),
            cache_read_tokens=cached,
            cache_write_tokens=fresh if model.caches else 0,
        )
        context += fresh
        ctx.output(f"turn {turn}/{turns}: {context:,} tokens of context")
        if rng.random() < 0.03:
            raise SimulatedFailure(f"turn {turn}: 529 overloaded from {model.provider or 'local'}")
    return f"{turns} turns"


def _submit_one(executor: Executor, number: int, options: DemoOptions, rng: random.Random) -> None:
    model = rng.choice(MODELS)
    job = rng.choice(JOBS)
    fails = rng.random() < options.failure_rate
    executor.submit(
        _maybe_failing,
        model,
        random.Random(rng.random()),
        fails,
        options.speed,
        task_id=f"{job}-{number:04d}",
        name=f"{job} with {model.name}",
        retries=rng.choice((0, 1, 2)),
        priority=0,
        model=model.name,
        provider=model.provider,
    )


async def _maybe_failing(
    ctx: TaskContext, model: SimulatedModel, rng: random.Random, fails: bool, speed: float
) -> str:
    if fails:
        await trio.sleep(rng.uniform(0.5, 2.0) / speed)
        raise SimulatedFailure(f"tool call failed: exit status {rng.choice((1, 2, 124))}")
    return await simulated_agent(ctx, model, rng, speed)


async def _keep_the_queue_full(
    executor: Executor, options: DemoOptions, rng: random.Random
) -> None:
    number = 0
    while True:
        waiting = executor.waiting_count
        for _ in range(max(0, options.queue_depth - waiting)):
            number += 1
            _submit_one(executor, number, options, rng)
        await trio.sleep(1.0 / options.speed)


async def _raise_the_budget_when_exhausted(
    executor: Executor, exhausted: trio.MemoryReceiveChannel[float], options: DemoOptions
) -> None:
    async for _spent in exhausted:
        await trio.sleep(options.budget_pause_seconds / options.speed)
        budget = (executor.budget_usd or 0.0) + options.budget_step_usd
        executor.set_budget(budget, by="operator")
        try:
            executor.resume(by="operator", reason="demo raised the budget")
        except BudgetExceededError:
            continue
        log.info("demo raised the budget", budget_usd=budget)


async def simulate(
    executor: Executor, publisher: Publisher, options: DemoOptions, rng: random.Random
) -> None:
    """Keep the executor fed with simulated agents, raising the budget when it runs out.

    Runs until cancelled.
    """
    send_exhausted, receive_exhausted = trio.open_memory_channel[float](1)

    def on_event(item: Published) -> None:
        if isinstance(item.event, BudgetExhausted):
            # When full, one raise is already on its way.
            with contextlib.suppress(trio.WouldBlock):
                send_exhausted.send_nowait(item.event.spent_usd)

    remove = publisher.add_listener(on_event)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_keep_the_queue_full, executor, options, rng)
            nursery.start_soon(
                _raise_the_budget_when_exhausted, executor, receive_exhausted, options
            )
    finally:
        remove()


async def run_demo(options: DemoOptions, *, out: TextIO = sys.stdout) -> int:
    """Serve and simulate until SIGINT/SIGTERM; then stop cleanly (exit code 0)."""
    settings = options.stack_settings()
    async with watch_stop_signals() as stop, open_stack(settings) as stack:
        announce(stack.server, out)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                simulate, stack.executor, stack.publisher, options, random.Random(options.seed)
            )
            received = await stop.wait()
            log.info("stopping the demo", signal=received)
            stack.server.stop_accepting()
            nursery.cancel_scope.cancel()
        stack.executor.cancel_all(reason="demo stopped")
    return 0
