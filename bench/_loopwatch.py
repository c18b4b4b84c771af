"""How long the trio event loop is blocked: per task step, and as a heartbeat sees it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

BLOCK_THRESHOLD = 0.010


@attrs.define(eq=False)
class StepTimer(trio.abc.Instrument):
    """A trio instrument timing every task step: a step is time nothing else can run.

    Wall time is what other tasks wait; the trio thread's CPU time within the
    step tells running code (and garbage collection) apart from waiting for
    the GIL or for a CPU on a busy machine.
    """

    threshold: float = BLOCK_THRESHOLD
    longest: float = 0.0
    longest_cpu: float = 0.0  # the trio thread's CPU time during that longest step
    longest_task: str = ""
    most_cpu: float = 0.0  # the largest CPU time of any one step
    steps: int = 0
    over_threshold: int = 0
    cpu_over_threshold: int = 0
    _started: float | None = None
    _started_cpu: float = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()
        self._started_cpu = time.thread_time()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._started is None:  # added during this step: its start was not seen
            return
        spent = time.perf_counter() - self._started
        cpu = time.thread_time() - self._started_cpu
        self._started = None
        self.steps += 1
        if spent > self.threshold:
            self.over_threshold += 1
        if cpu > self.threshold:
            self.cpu_over_threshold += 1
        self.most_cpu = max(self.most_cpu, cpu)
        if spent > self.longest:
            self.longest = spent
            self.longest_cpu = cpu
            self.longest_task = task.name


@attrs.define(eq=False)
class Heartbeat:
    """Wakes every ``period`` seconds; lateness is what any ready task would wait."""

    period: float = 0.001
    beats: int = 0
    worst_lateness: float = 0.0
    late_beats: int = 0

    async def run(self) -> None:
        while True:
            due = time.perf_counter() + self.period
            await trio.sleep(self.period)
            lateness = time.perf_counter() - due
            self.beats += 1
            if lateness > BLOCK_THRESHOLD:
                self.late_beats += 1
            self.worst_lateness = max(self.worst_lateness, lateness)


@attrs.define(eq=False)
class LoopWatch:
    steps: StepTimer
    heartbeat: Heartbeat

    def as_dict(self) -> dict[str, object]:
        return {
            "longest_task_step_seconds": self.steps.longest,
            "longest_task_step_cpu_seconds": self.steps.longest_cpu,
            "longest_task_step_task": self.steps.longest_task,
            "most_cpu_in_one_step_seconds": self.steps.most_cpu,
            "task_steps": self.steps.steps,
            "task_steps_over_10ms": self.steps.over_threshold,
            "task_steps_over_10ms_cpu": self.steps.cpu_over_threshold,
            "heartbeat_worst_lateness_seconds": self.heartbeat.worst_lateness,
            "heartbeat_beats": self.heartbeat.beats,
            "heartbeat_late_over_10ms": self.heartbeat.late_beats,
        }


@asynccontextmanager
async def watch_loop(*, heartbeat_period: float = 0.001) -> AsyncIterator[LoopWatch]:
    """Time task steps and run a heartbeat while the block runs."""
    steps = StepTimer()
    heartbeat = Heartbeat(period=heartbeat_period)
    trio.lowlevel.add_instrument(steps)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat.run, name="bench heartbeat")
            yield LoopWatch(steps, heartbeat)
            nursery.cancel_scope.cancel()
    finally:
        trio.lowlevel.remove_instrument(steps)
