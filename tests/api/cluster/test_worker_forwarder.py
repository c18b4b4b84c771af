"""The worker's forwarder: which events go, numbered how, retried how, bounded how."""

from __future__ import annotations

import json

import pytest
import structlog
import trio
import trio.testing
from _worker_support import FakeLink

from api.cluster._forwarder import Forwarder, dropped_notice
from events import (
    BudgetChanged,
    ExecutorPaused,
    Publisher,
    TaskCompleted,
    TaskOutput,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)

INSTANCE = "w:test:00000000"


def _forwarder(link: FakeLink, **options: int) -> Forwarder:
    return Forwarder(link, INSTANCE, **options)  # type: ignore[arg-type]


async def test_only_task_events_go_numbered_1_2_3_with_seq_0(nursery: trio.Nursery) -> None:
    link = FakeLink()
    forwarder = _forwarder(link)
    publisher = Publisher()
    publisher.add_listener(forwarder)
    await nursery.start(forwarder.serve)
    publisher.publish(TaskQueued(task_id="a"))  # submit's
    publisher.publish(TaskStarted(task_id="a"))
    publisher.publish(ExecutorPaused(by="operator"))  # the cluster's
    publisher.publish(TaskUsage(task_id="a", input_tokens=5, cost_usd=0.5, cost_source="reported"))
    publisher.publish(BudgetChanged(budget_usd=1.0))  # the cluster's
    publisher.publish(TaskCompleted(task_id="a"))
    await forwarder.drained()
    assert link.kinds() == ["task_started", "task_usage", "task_completed"]
    assert [r.src_seq for r in link.stream] == [1, 2, 3]
    assert {r.src for r in link.stream} == {INSTANCE}
    assert [frame["seq"] for frame in link.frames()] == [0, 0, 0]
    assert link.stream[1].cost_usd == 0.5
    assert link.stream[0].cost_usd is None


async def test_a_lost_reply_is_retried_with_the_same_src_seq_and_counted_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(lose_reply_next=1)
    forwarder = _forwarder(link)
    await nursery.start(forwarder.serve)
    forwarder.queue(TaskStarted(task_id="a"))
    forwarder.queue(TaskUsage(task_id="a", input_tokens=7, cost_usd=0.25, cost_source="reported"))
    await forwarder.drained()
    first, retry = link.calls
    assert retry == first  # the same requests: same src, same src_seq, same JSON
    assert link.kinds() == ["task_started", "task_usage"]  # once, not twice
    assert link.spent_usd == 0.25
    assert (forwarder.appended, forwarder.duplicates) == (0, 2)


async def test_backoff_doubles_from_a_tenth_of_a_second_to_five(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(fail_next=8)
    forwarder = _forwarder(link)
    await nursery.start(forwarder.serve)
    forwarder.queue(TaskStarted(task_id="a"))
    await forwarder.drained()
    waits = [round(b - a, 6) for a, b in zip(link.call_times, link.call_times[1:], strict=False)]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert link.kinds() == ["task_started"]
    assert not forwarder.unreachable


async def test_output_over_its_bound_is_dropped_counted_and_announced_before_the_next_event(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(fail_next=1_000_000)
    forwarder = _forwarder(link, output_bound=2)
    await nursery.start(forwarder.serve)
    forwarder.queue(TaskStarted(task_id="a"))
    for text in ("one", "two", "three", "four\nfive\nsix"):
        forwarder.queue(TaskOutput(task_id="a", line=text, lines=text.count("\n") + 1))
    await trio.testing.wait_all_tasks_blocked()
    assert forwarder.output_lines_dropped == 4
    assert forwarder.backlogged  # Redis down with events waiting: claim nothing new
    forwarder.queue(TaskCompleted(task_id="a"))
    link.fail_next = 0
    await forwarder.drained()
    lines = [frame["data"].get("line") for frame in link.frames()]
    assert link.kinds() == ["task_started", *["task_output"] * 3, "task_completed"]
    assert lines[1:4] == ["one", "two", dropped_notice(4)]
    assert link.frames()[3]["data"]["stream"] == "stderr"
    assert not forwarder.backlogged


async def test_a_notice_goes_out_once_the_buffer_drains_if_no_event_follows(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(fail_next=3)
    forwarder = _forwarder(link, output_bound=1)
    await nursery.start(forwarder.serve)
    forwarder.queue(TaskOutput(task_id="a", line="kept"))
    forwarder.queue(TaskOutput(task_id="a", line="lost"))
    await forwarder.drained()
    assert [frame["data"]["line"] for frame in link.frames()] == ["kept", dropped_notice(1)]


async def test_accounting_over_its_bound_is_counted_and_logged(nursery: trio.Nursery) -> None:
    link = FakeLink(gate=trio.Event())
    forwarder = _forwarder(link, accounting_bound=2)
    with structlog.testing.capture_logs() as logs:
        for attempt in (1, 2, 3):
            forwarder.queue(TaskStarted(task_id="a", attempt=attempt))
    assert forwarder.accounting_dropped == 1
    assert forwarder.pending == 2
    assert [entry["event"] for entry in logs] == ["event buffer full: accounting events dropped"]


@pytest.mark.parametrize(("held", "backlogged"), [(2, False), (3, True)])
async def test_more_than_half_full_is_backlogged_even_with_redis_up(
    held: int, backlogged: bool
) -> None:
    forwarder = _forwarder(FakeLink(), accounting_bound=4)
    for attempt in range(1, held + 1):
        forwarder.queue(TaskStarted(task_id="a", attempt=attempt))
    assert forwarder.backlogged is backlogged


async def test_local_ids_map_to_the_cluster_task_and_suppressed_ends_stay_here(
    nursery: trio.Nursery,
) -> None:
    link = FakeLink()
    forwarder = _forwarder(link)
    forwarder.cluster_ids["a~1"] = "a"
    forwarder.tokens["a"] = "w:test:00000000|7"
    forwarder.suppressed_ends.add("b")
    publisher = Publisher()
    publisher.add_listener(forwarder)
    await nursery.start(forwarder.serve)
    publisher.publish(TaskStarted(task_id="a~1", attempt=2))
    publisher.publish(TaskCompleted(task_id="a~1", attempt=2))
    publisher.publish(TaskStarted(task_id="b"))
    publisher.publish(TaskCompleted(task_id="b"))  # handed back: its end is not ours
    await forwarder.drained()
    assert [(r.task_id, r.kind) for r in link.stream] == [
        ("a", "task_started"),
        ("a", "task_completed"),
        ("b", "task_started"),
    ]
    assert link.stream[0].token == "w:test:00000000|7"
    assert [frame["task_id"] for frame in link.frames()] == ["a", "a", "b"]
    assert forwarder.cluster_ids == {}
    assert forwarder.tokens == {}  # the end is appended: the lease is gone


async def test_an_end_appended_or_fenced_is_reported_once(nursery: trio.Nursery) -> None:
    link = FakeLink(status_of={2: "fenced"})
    ended: list[str] = []
    forwarder = Forwarder(link, INSTANCE, on_end_appended=ended.append)
    forwarder.tokens.update(a="x|1", b="x|2")
    await nursery.start(forwarder.serve)
    forwarder.queue(TaskCompleted(task_id="a"))
    forwarder.queue(TaskCompleted(task_id="b"))
    await forwarder.drained()
    assert ended == ["a", "b"]
    assert (forwarder.appended, forwarder.fenced) == (1, 1)


async def test_crossing_the_warning_line_queues_a_budget_warning(nursery: trio.Nursery) -> None:
    link = FakeLink(crossed_of={1: ("warning",)}, budget_usd=1.0)
    forwarder = _forwarder(link)
    await nursery.start(forwarder.serve)
    forwarder.queue(TaskUsage(task_id="a", cost_usd=0.9, cost_source="reported"))
    await forwarder.drained()
    assert link.kinds() == ["task_usage", "budget_warning"]
    assert link.frames()[1]["data"] == {"budget_usd": 1.0, "spent_usd": 0.9, "threshold": 0.8}
    assert link.controls == []


async def test_crossing_both_lines_warns_then_pauses_every_worker(nursery: trio.Nursery) -> None:
    link = FakeLink(crossed_of={1: ("warning", "exhausted")}, budget_usd=1.0, on_budget="suspend")
    forwarder = _forwarder(link)
    await nursery.start(forwarder.serve)
    forwarder.queue(TaskUsage(task_id="a", cost_usd=1.5, cost_source="reported"))
    await forwarder.drained()
    assert link.kinds() == ["task_usage"]
    (pause,) = link.controls
    assert (pause.op, pause.by, pause.suspend) == ("pause", "budget", True)
    assert pause.reason == "budget exhausted: spent $1.5000 of $1.0000"
    frames = [json.loads(text) for text in pause.events]
    assert [frame["event"] for frame in frames] == [
        "budget_warning",
        "budget_exhausted",
        "executor_paused",
    ]
    assert frames[1]["data"] == {"budget_usd": 1.0, "spent_usd": 1.5}
    assert frames[2]["data"] == {"by": "budget", "reason": pause.reason}
