"""Hypothesis drives the executor through random operations and checks its invariants.

The executor lives in a trio run on a helper thread (Hypothesis' state machines
are synchronous); every step is one call into that run followed by
``wait_all_tasks_blocked``, on a mock clock that only moves when a rule jumps it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from events import Published, Publisher
from executor import Executor, TaskContext, TaskState, open_executor

T = TypeVar("T")

CONCURRENCY = 2

# The state each lifecycle event leaves its task in.
STATE_AFTER: dict[str, TaskState] = {
    "task_queued": "queued",
    "task_started": "running",
    "task_retrying": "retrying",
    "task_completed": "completed",
    "task_failed": "failed",
    "task_cancelled": "cancelled",
}


class TrioThread:
    """One trio run on a thread, holding an open executor until stopped."""

    def __init__(self) -> None:
        self.clock = trio.testing.MockClock()
        self.publisher = Publisher()
        self.events: list[Published] = []
        self.publisher.add_listener(self.events.append)
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError(f"trio thread did not start: {self.error!r}")

    def _run(self) -> None:
        try:
            trio.run(self._main, clock=self.clock)
        except BaseException as exc:
            self.error = exc

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.stop = trio.Event()
        async with open_executor(
            self.publisher, concurrency=CONCURRENCY, retry_backoff=1.0
        ) as executor:
            self.executor: Executor = executor
            self._ready.set()
            await self.stop.wait()
            executor.cancel_all(reason="test over")

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return trio.from_thread.run(fn, trio_token=self.token)

    def close(self) -> None:
        async def stop() -> None:
            self.stop.set()

        self.call(stop)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()
        assert self.error is None, self.error


class ExecutorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.trio = TrioThread()
        self.ids: list[str] = []
        self.gates: dict[str, trio.Event] = {}
        self.outcomes: dict[str, bool] = {}

    @property
    def executor(self) -> Executor:
        return self.trio.executor

    def step(self, action: Callable[[], Any]) -> None:
        async def run() -> None:
            action()
            await trio.testing.wait_all_tasks_blocked()

        self.trio.call(run)

    async def controlled(self, ctx: TaskContext) -> None:
        gate = self.gates[ctx.task_id] = trio.Event()
        await gate.wait()
        if not self.outcomes.pop(ctx.task_id):
            raise RuntimeError("told to fail")

    def pick(self, index: int) -> str:
        return self.ids[index % len(self.ids)]

    @rule(
        retries=st.integers(0, 2),
        priority=st.integers(0, 2),
        timeout=st.sampled_from([None, 2.5]),
    )
    def submit(self, retries: int, priority: int, timeout: float | None) -> None:
        task_id = f"t{len(self.ids)}"
        self.ids.append(task_id)
        self.step(
            lambda: self.executor.submit(
                self.controlled,
                task_id=task_id,
                retries=retries,
                priority=priority,
                timeout=timeout,
            )
        )

    @precondition(lambda self: self.gates)
    @rule(index=st.integers(0, 10_000), succeed=st.booleans())
    def finish(self, index: int, succeed: bool) -> None:
        waiting = sorted(self.gates)
        task_id = waiting[index % len(waiting)]
        gate = self.gates.pop(task_id)
        self.outcomes[task_id] = succeed
        self.step(gate.set)

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 10_000))
    def cancel(self, index: int) -> None:
        task_id = self.pick(index)
        self.gates.pop(task_id, None)
        self.step(lambda: self.executor.cancel(task_id))

    @rule()
    def pause(self) -> None:
        self.step(self.executor.pause)

    @rule()
    def resume(self) -> None:
        self.step(self.executor.resume)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0]))
    def advance_clock(self, seconds: float) -> None:
        self.step(lambda: self.trio.clock.jump(seconds))
        # A timed-out attempt's gate is never set; forget it.
        for task_id in list(self.gates):
            if self.executor.task(task_id).state != "running":
                del self.gates[task_id]

    @invariant()
    def running_count_matches_running_tasks(self) -> None:
        states = [info.state for info in self.executor.tasks()]
        running = self.executor.running_count
        assert running >= 0
        assert running == states.count("running")
        assert running <= CONCURRENCY
        if not self.executor.is_paused:
            # Work-conserving: nothing waits while a slot is free.
            assert running == CONCURRENCY or "queued" not in states

    @invariant()
    def events_replay_to_the_same_states(self) -> None:
        replayed: dict[str, TaskState] = {}
        for item in self.trio.events:
            state = STATE_AFTER.get(item.event_name)
            if state is not None:
                replayed[item.task_id] = state
        assert replayed == {info.task_id: info.state for info in self.executor.tasks()}

    def teardown(self) -> None:
        self.trio.close()
        assert self.executor.running_count == 0
        assert all(
            info.state in ("completed", "failed", "cancelled") for info in self.executor.tasks()
        )


ExecutorMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestExecutorStateMachine = ExecutorMachine.TestCase
