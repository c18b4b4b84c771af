"""SessionBroadcaster timing on the mock clock: immediate triggers, ticker, idle, bursts, usage."""

from __future__ import annotations

import functools
import math

import attrs
import pytest
import trio
import trio.testing

from broadcaster import BroadcasterConfigError, SessionBroadcaster, serve_broadcaster
from events import (
    BudgetChanged,
    Event,
    ExecutorPaused,
    ExecutorResumed,
    Published,
    Publisher,
    SessionUpdate,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)

IMMEDIATE = 0.1


@attrs.define
class Recorder:
    """Every session_update the publisher sends, with the mock time it was sent at."""

    updates: list[tuple[float, SessionUpdate]] = attrs.field(factory=list)

    def __call__(self, item: Published) -> None:
        if isinstance(item.event, SessionUpdate):
            self.updates.append((trio.current_time(), item.event))

    def times(self) -> list[float]:
        return [moment for moment, _ in self.updates]

    def since(self, moment: float) -> list[tuple[float, SessionUpdate]]:
        return [(t, u) for t, u in self.updates if t >= moment]

    @property
    def last(self) -> SessionUpdate:
        return self.updates[-1][1]


@attrs.define
class Harness:
    publisher: Publisher
    broadcaster: SessionBroadcaster
    recorder: Recorder

    def publish(self, event: Event) -> float:
        self.publisher.publish(event)
        return trio.current_time()


async def start(nursery: trio.Nursery, *, interval: float = 10.0) -> Harness:
    publisher = Publisher()
    recorder = Recorder()
    publisher.add_listener(recorder)
    broadcaster = await nursery.start(
        functools.partial(serve_broadcaster, publisher, interval=interval, session_id="s-1")
    )
    return Harness(publisher, broadcaster, recorder)


# -- immediate triggers -------------------------------------------------------------


END_EVENTS = [
    pytest.param(TaskCompleted(task_id="t1", duration_seconds=3.0), "tasks_completed", id="done"),
    pytest.param(TaskFailed(task_id="t1", error="boom"), "tasks_failed", id="failed"),
    pytest.param(TaskCancelled(task_id="t1", was_running=True), "tasks_cancelled", id="cancel"),
]


async def test_task_start_is_broadcast_within_100ms(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    h.publish(TaskQueued(task_id="t1"))
    await trio.sleep(5)
    assert h.recorder.updates == []  # queueing alone is not a trigger
    sent = h.publish(TaskStarted(task_id="t1"))
    await trio.sleep(IMMEDIATE)
    [(moment, update)] = h.recorder.updates
    assert moment - sent <= IMMEDIATE
    assert (update.tasks_running, update.tasks_queued) == (1, 0)
    assert h.broadcaster.updates_sent["task_start"] == 1


@pytest.mark.parametrize(("end", "counter"), END_EVENTS)
async def test_task_end_is_broadcast_within_100ms(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, end: Event, counter: str
) -> None:
    h = await start(nursery)
    h.publish(TaskStarted(task_id="t1"))
    await trio.sleep(1)
    sent = h.publish(end)
    await trio.sleep(IMMEDIATE)
    moment, update = h.recorder.updates[-1]
    assert len(h.recorder.updates) == 2
    assert moment - sent <= IMMEDIATE
    assert update.tasks_running == 0
    assert getattr(update, counter) == 1
    assert h.broadcaster.updates_sent["task_end"] == 1


@pytest.mark.parametrize(
    "change",
    [ExecutorPaused(by="operator"), ExecutorResumed(by="operator"), BudgetChanged(budget_usd=5.0)],
    ids=["pause", "resume", "budget"],
)
async def test_operator_controls_are_broadcast_within_100ms_even_when_idle(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, change: Event
) -> None:
    h = await start(nursery)
    sent = h.publish(change)
    await trio.sleep(IMMEDIATE)
    [(moment, update)] = h.recorder.updates
    assert moment - sent <= IMMEDIATE
    assert update.is_paused is isinstance(change, ExecutorPaused)


async def test_back_to_back_triggers_each_reach_subscribers_within_100ms(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    start_sent = h.publish(TaskStarted(task_id="t1"))
    await trio.sleep(0.01)
    end_sent = h.publish(TaskCompleted(task_id="t1"))
    await trio.sleep(IMMEDIATE)
    (first_at, first), (second_at, second) = h.recorder.updates
    assert first_at - start_sent <= IMMEDIATE
    assert second_at - end_sent <= IMMEDIATE
    assert (first.tasks_running, second.tasks_completed) == (1, 1)


async def test_subscribe_gets_the_snapshot_at_once_and_others_do_not(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    other = h.publisher.subscribe("*")
    h.publish(TaskUsage(task_id="t1", model="m", input_tokens=7, cost_usd=0.5))
    await trio.sleep(2)
    assert [i.event.event_name for i in other.drain() if isinstance(i, Published)] == [
        "task_usage",
        "session_update",
    ]
    subscription = h.broadcaster.subscribe_session()
    item = subscription.receive_nowait()  # no waiting at all
    assert isinstance(item, Published)
    assert isinstance(item.event, SessionUpdate)
    assert (item.event.input_tokens, item.event.estimated_cost_usd) == (7, 0.5)
    assert item.seq == h.publisher.last_seq
    with pytest.raises(trio.WouldBlock):
        other.receive_nowait()
    assert h.broadcaster.updates_sent["subscribe"] == 1
    subscription.close()


async def test_subscribe_with_since_replays_then_sends_the_snapshot(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    h.publish(TaskQueued(task_id="a"))
    h.publish(TaskQueued(task_id="b"))
    subscription = h.broadcaster.subscribe_session(since=1)
    items = list(subscription.drain())
    assert [type(i.event).__name__ for i in items if isinstance(i, Published)] == [
        "TaskQueued",
        "SessionUpdate",
    ]
    last = items[-1]
    assert isinstance(last, Published)
    assert isinstance(last.event, SessionUpdate)
    assert last.event.tasks_queued == 2


async def test_snapshot_does_not_broadcast(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    snapshot = h.broadcaster.snapshot()
    await trio.sleep(60)
    assert h.recorder.updates == []
    assert snapshot.session_id == "s-1"
    assert (snapshot.started_at, snapshot.duration_seconds) == (None, 0)


# -- ticker ------------------------------------------------------------------------------


async def test_ticker_period_is_exact(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=2.5)
    await trio.sleep(0.3)
    began = h.publish(TaskStarted(task_id="t1"))
    await trio.sleep(10.1)
    ticks = [t for t in h.recorder.times() if t > began + IMMEDIATE]
    assert ticks == [began + 2.5 * n for n in (1, 2, 3, 4)]
    assert h.broadcaster.updates_sent["tick"] == 4


async def test_ticker_stops_with_the_last_task_and_restarts_with_the_next(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=10)
    began = h.publish(TaskStarted(task_id="a"))
    h.publish(TaskStarted(task_id="b"))
    await trio.sleep(15)
    h.publish(TaskCompleted(task_id="a"))
    await trio.sleep(10)  # t = 25: tick at 20 still came, one task runs
    ended = h.publish(TaskFailed(task_id="b"))
    assert h.broadcaster.updates_sent["tick"] == 2
    await trio.sleep(1000)
    assert h.broadcaster.updates_sent["tick"] == 2
    assert not h.broadcaster.ticker_running
    assert [t for t in h.recorder.times() if t > ended + IMMEDIATE] == []
    # a's start goes out at once (first start after idle), b's rides the next window.
    assert [t - began for t in h.recorder.times()] == [0, 0.05, 10, 15, 20, 25]

    again = h.publish(TaskStarted(task_id="c"))
    await trio.sleep(25)
    assert [t - again for t in h.recorder.times() if t > again] == [10, 20]


async def test_ticker_restarts_when_running_drops_to_zero_and_back_at_once(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=10)
    h.publish(TaskStarted(task_id="a"))
    await trio.sleep(4)
    h.publish(TaskCompleted(task_id="a"))
    restarted = h.publish(TaskStarted(task_id="b"))  # no checkpoint in between
    await trio.sleep(21)
    ticks = [t - restarted for t in h.recorder.times() if t > restarted + IMMEDIATE]
    assert ticks == [10, 20]


async def test_cancelling_a_task_does_not_stop_the_ticker(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=10)

    async def first_task() -> None:
        # The task whose start began the ticker runs in its own scope (orc
        # ties its ticker to this context and loses it when it is cancelled).
        h.publish(TaskStarted(task_id="first"))
        await trio.sleep_forever()

    began = trio.current_time()
    with trio.CancelScope() as first_scope:
        async with trio.open_nursery() as task_nursery:
            task_nursery.start_soon(first_task)
            await trio.testing.wait_all_tasks_blocked()
            h.publish(TaskStarted(task_id="second"))
            await trio.sleep(12)
            first_scope.cancel()
    h.publish(TaskCancelled(task_id="first", was_running=True))
    await trio.sleep(30)
    # Both starts coalesce into two updates, then ticks every 10 s around the cancel at 12.
    assert [t - began for t in h.recorder.times()] == pytest.approx([0, 0.05, 10, 12, 20, 30, 40])
    assert (h.recorder.last.tasks_cancelled, h.recorder.last.tasks_running) == (1, 1)


# -- idle --------------------------------------------------------------------------------


async def test_no_broadcasts_over_an_hour_idle(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=1)
    await trio.sleep(3600)
    assert h.recorder.updates == []

    h.publish(TaskStarted(task_id="a"))
    await trio.sleep(5.5)
    ended = h.publish(TaskCompleted(task_id="a"))
    await trio.sleep(IMMEDIATE)
    count = len(h.recorder.updates)
    assert h.recorder.last.tasks_completed == 1
    await trio.sleep(3600)
    assert len(h.recorder.updates) == count
    assert h.recorder.times()[-1] <= ended + IMMEDIATE


async def test_no_broadcasts_over_an_hour_paused_with_nothing_running(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=1)
    h.publish(ExecutorPaused(by="startup"))
    for index in range(20):
        h.publish(TaskQueued(task_id=f"q{index}"))
    await trio.sleep(3600)
    [(_, update)] = h.recorder.updates
    assert update.is_paused
    assert h.broadcaster.snapshot().tasks_queued == 20


# -- bursts and usage -------------------------------------------------------------------


async def test_a_burst_of_1000_starts_gives_a_handful_of_updates(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    began = trio.current_time()
    for index in range(1000):
        h.publish(TaskStarted(task_id=f"t{index}"))
        if index % 100 == 99:
            await trio.sleep(0.0005)  # 1,000 starts over 5 ms, the flusher runs between
    await trio.sleep(1)
    times = h.recorder.times()
    assert 1 <= len(times) <= 5
    assert times[0] - began <= IMMEDIATE
    assert h.recorder.last.tasks_running == 1000


async def test_first_start_after_idle_goes_out_before_a_busy_submitter_yields(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    seen: list[Published] = []
    h.broadcaster.publisher.add_listener(seen.append)
    for index in range(1000):  # one synchronous loop: the flusher cannot run meanwhile
        h.publish(TaskStarted(task_id=f"t{index}"))
    first_update = next(i for i, item in enumerate(seen) if item.event_name == "session_update")
    assert first_update == 1  # right after its cause, never before it
    update = seen[first_update].event
    assert isinstance(update, SessionUpdate)
    assert update.tasks_running == 1
    await trio.sleep(1)
    assert h.recorder.last.tasks_running == 1000
    assert len(h.recorder.times()) == 2


async def test_usage_reaches_subscribers_within_1s_without_one_update_per_record(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=3600)
    h.publish(TaskStarted(task_id="t1"))
    await trio.sleep(1)
    first_update_count = len(h.recorder.updates)
    recorded: list[tuple[float, int]] = []
    total = 0
    for _ in range(300):  # one record every 10 ms for 3 s
        total += 11
        h.publish(TaskUsage(task_id="t1", model="m", input_tokens=10, output_tokens=1))
        recorded.append((trio.current_time(), total))
        await trio.sleep(0.01)
    await trio.sleep(1)
    updates = h.recorder.updates[first_update_count:]
    for moment, tokens in recorded:
        assert any(moment <= t <= moment + 1 and u.total_tokens >= tokens for t, u in updates), (
            f"usage recorded at {moment} not sent within 1 s"
        )
    assert len(updates) <= 8
    assert h.recorder.last.total_tokens == 300 * 11
    assert h.broadcaster.updates_sent["usage"] == len(updates)


async def test_a_single_usage_record_is_sent_within_1s(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    sent = h.publish(TaskUsage(task_id="t1", model="m", output_tokens=3, cost_usd=None))
    await trio.sleep(1)
    [(moment, update)] = h.recorder.updates
    assert moment - sent <= 1
    assert (update.output_tokens, update.unpriced_tokens) == (3, 3)


# -- session fields ------------------------------------------------------------------------


async def test_duration_counts_whole_seconds_from_the_first_start(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery, interval=1000)
    await trio.sleep(50)
    h.publish(TaskStarted(task_id="a"))
    started_item = h.publisher.history_since(0)[-1]
    await trio.sleep(61.9)
    snapshot = h.broadcaster.snapshot()
    assert snapshot.duration_seconds == 61
    assert snapshot.started_at == started_item.time
    h.publish(TaskStarted(task_id="b"))  # later starts do not move the start
    assert h.broadcaster.snapshot().started_at == started_item.time
    seen = [h.broadcaster.snapshot().duration_seconds]
    for _ in range(50):
        await trio.sleep(0.37)
        seen.append(h.broadcaster.snapshot().duration_seconds)
    assert seen == sorted(seen)


async def test_budget_remaining_never_goes_below_zero(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    h = await start(nursery)
    assert h.broadcaster.snapshot().budget_remaining_usd is None
    h.publish(BudgetChanged(budget_usd=1.0))
    h.publish(TaskUsage(task_id="a", model="m", output_tokens=1, cost_usd=0.25))
    snapshot = h.broadcaster.snapshot()
    assert (snapshot.budget_usd, snapshot.budget_remaining_usd) == (1.0, 0.75)
    h.publish(TaskUsage(task_id="a", model="m", output_tokens=1, cost_usd=2.0))
    assert h.broadcaster.snapshot().budget_remaining_usd == 0.0
    h.publish(BudgetChanged(budget_usd=None))
    assert h.broadcaster.snapshot().budget_remaining_usd is None


async def test_serve_broadcaster_stops_listening_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            broadcaster = await nursery.start(serve_broadcaster, publisher)
            scope.cancel()
    publisher.publish(TaskStarted(task_id="late"))
    assert broadcaster.snapshot().tasks_running == 0
    assert len(broadcaster.session_id) == 32  # a fresh uuid4 hex


@pytest.mark.parametrize(
    ("value", "message"),
    [(0, "> 0"), (-1.0, "> 0"), (math.nan, "finite"), (math.inf, "finite"), ("10", "number")],
)
def test_bad_interval_is_refused_naming_it(value: object, message: str) -> None:
    with pytest.raises(BroadcasterConfigError, match=f"interval.*{message}"):
        SessionBroadcaster(Publisher(), interval=value)  # type: ignore[arg-type]


def test_bad_session_id_is_refused() -> None:
    with pytest.raises(BroadcasterConfigError, match="session_id"):
        SessionBroadcaster(Publisher(), session_id="")


async def test_a_pending_update_is_sent_when_the_broadcaster_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    publisher = Publisher()
    recorder = Recorder()
    publisher.add_listener(recorder)
    async with trio.open_nursery() as nursery:
        broadcaster = await nursery.start(serve_broadcaster, publisher)
        publisher.publish(TaskStarted(task_id="a"))
        await trio.sleep(0.01)
        publisher.publish(TaskCompleted(task_id="a"))  # inside the 50 ms window
        nursery.cancel_scope.cancel()
    assert [u.tasks_completed for _, u in recorder.updates] == [0, 1]
    assert broadcaster.updates_sent["task_end"] == 1
    broadcaster.flush()  # nothing pending: nothing sent
    assert len(recorder.updates) == 2
