"""A budget crossing is announced exactly once even when the reply to its append is lost
(issue 21, point 6): by the worker's resend (a dup that says ``announce``), by another
worker's append, or by an idle worker's check."""

from __future__ import annotations

import json

import trio
import trio.testing
from _budget_announce_support import BudgetLink, usage_request
from test_worker_claims import INSTANCE, FakeExecutor

from api.cluster._claims import Claims
from api.cluster._forwarder import Forwarder
from events import TaskStarted, TaskUsage

ANNOUNCED = ["budget_warning", "budget_exhausted", "executor_paused"]


def usage(cost: float) -> TaskUsage:
    return TaskUsage(task_id="a", cost_usd=cost, cost_source="reported")


async def test_a_lost_reply_to_the_crossing_append_still_announces_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # Redis ran the append script (the session is paused, spend counted), then the
    # connection dropped: the resend is a dup, which must still get it announced.
    link = BudgetLink(budget_usd=1.0, on_budget="suspend", lose_reply_next=1)
    forwarder = Forwarder(link, INSTANCE)
    await nursery.start(forwarder.serve)
    forwarder.queue(usage(1.5))
    await forwarder.drained()
    assert forwarder.duplicates == 1
    assert link.timeline == ["task_usage", *ANNOUNCED]
    assert link.pause_entries == 1
    pause = link.controls[-1]
    assert (pause.by, pause.suspend) == ("budget", True)
    assert pause.reason == "budget exhausted: spent $1.5000 of $1.0000"
    frames = [json.loads(text) for text in pause.events]
    assert frames[1]["data"] == {"budget_usd": 1.0, "spent_usd": 1.5}


async def test_a_lost_reply_to_the_warning_append_still_warns_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = BudgetLink(budget_usd=1.0, lose_reply_next=1)
    forwarder = Forwarder(link, INSTANCE)
    await nursery.start(forwarder.serve)
    forwarder.queue(usage(0.9))
    await forwarder.drained()
    forwarder.queue(TaskStarted(task_id="b"))  # the next reply finds nothing pending
    await forwarder.drained()
    assert link.timeline == ["task_usage", "budget_warning", "task_started"]
    assert json.loads(link.stream[1].event_json)["data"]["spent_usd"] == 0.9
    assert link.controls == []


async def test_two_workers_that_both_see_the_crossing_announce_it_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = BudgetLink(budget_usd=1.0, lose_reply_next=1)
    crosser = Forwarder(link, "w:a:00000000")
    other = Forwarder(link, "w:b:00000000")
    await nursery.start(crosser.serve)
    await nursery.start(other.serve)
    crosser.queue(usage(1.2))
    other.queue(TaskStarted(task_id="b"))
    await crosser.drained()
    await other.drained()
    await trio.testing.wait_all_tasks_blocked()
    assert link.timeline.count("budget_exhausted") == 1
    assert link.timeline.count("budget_warning") == 1
    assert link.timeline.index("budget_warning") < link.timeline.index("budget_exhausted")
    assert link.pause_entries == 1


async def test_an_idle_worker_announces_the_crossing_of_a_worker_that_died(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = BudgetLink(budget_usd=1.0)
    # The crosser's append landed and the crosser died before reading the reply.
    (crossing,) = await link.append_many([usage_request("w:dead:00000000", 1.1)])
    assert crossing.crossed == ("warning", "exhausted")
    executor = FakeExecutor()
    forwarder = Forwarder(link, INSTANCE)
    claims = Claims(link, INSTANCE, executor, forwarder, lease_ms=3000)  # type: ignore[arg-type]
    await nursery.start(claims.serve_claims)
    await trio.sleep(1.5)  # the first claim finds nothing (the session is paused)
    assert link.timeline == ["task_usage", *ANNOUNCED]
    await trio.sleep(30)
    assert link.pause_entries == 1
    assert link.timeline == ["task_usage", *ANNOUNCED]
    assert link.state_reads <= 1 + 30 / 5  # an idle worker checks every 5 s, not per claim
