"""The scripts announce a budget crossing exactly once, against a real redis-server:
an unannounced crossing is flagged in every append reply and in the state, and a
warning or a budget pause goes in once however many workers send it, however often."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import attrs
import pytest
import trio
from _cluster_link_support import Producer, link_to, submit, wire
from _redis_support import RedisServer

from api.cluster import (
    AppendRequest,
    AppendResult,
    ClusterLink,
    ClusterState,
    ControlCommand,
    ControlResult,
    RedisUnavailable,
    SubmitSettings,
)
from api.cluster._forwarder import Forwarder
from events import (
    BudgetExhausted,
    BudgetWarning,
    ExecutorPaused,
    ExecutorResumed,
    TaskStarted,
    TaskUsage,
)

pytestmark = pytest.mark.integration

REASON = "budget exhausted: spent $0.3000 of $0.2000"


@pytest.fixture
async def link(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[ClusterLink]:
    async with link_to(redis_server, request.node.name) as opened:
        yield opened


def usage(cost: float) -> TaskUsage:
    return TaskUsage(task_id="t1", model="m", input_tokens=10, cost_usd=cost)


async def _spend(link: ClusterLink, producer: Producer, cost: float) -> AppendRequest:
    """Claim t1 (if not held) and build the usage request of ``cost``."""
    claims = await link.claim(producer.instance, 1, 30_000)
    token = claims[0].token if claims else ""
    return producer.request(usage(cost), token=token, cost_usd=cost)


async def _kinds(link: ClusterLink) -> list[str]:
    events = await link.read_events("0", count=1000, block_ms=None)
    return [json.loads(event.event_json)["event"] for event in events]


async def _pauses(link: ClusterLink) -> int:
    entries = await link.read_control("0-0", block_ms=1)
    return sum(entry.op == "pause" for entry in entries)


def _budget_pause(*events: str) -> ControlCommand:
    return ControlCommand(op="pause", by="budget", reason=REASON, events=events)


ANNOUNCEMENT = (
    wire(BudgetWarning(budget_usd=0.2, spent_usd=0.3)),
    wire(BudgetExhausted(budget_usd=0.2, spent_usd=0.3)),
    wire(ExecutorPaused(by="budget", reason=REASON)),
)


async def test_an_unannounced_crossing_is_flagged_in_replies_and_the_state(
    link: ClusterLink,
) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.2))
    producer = Producer("w:a:1")
    crossing = await _spend(link, producer, 0.3)
    (result,) = await link.append_many([crossing])
    assert (result.crossed, result.announce) == (("warning", "exhausted"), True)
    # The reply was lost: the resend is a dup, and says there is something to announce.
    (resent,) = await link.append_many([crossing])
    assert (resent.status, resent.crossed, resent.announce) == ("dup", (), True)
    state = await link.state()
    assert (state.warning_unannounced, state.exhaustion_unannounced) == (True, True)
    assert (state.warned_usd, state.exhausted_usd) == (0.3, 0.3)
    assert state.announce_pending


async def test_a_budget_pause_goes_in_once_however_often_it_is_sent(link: ClusterLink) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.2))
    producer = Producer("w:a:1")
    await link.append_many([await _spend(link, producer, 0.3)])
    first = await link.control(_budget_pause(*ANNOUNCEMENT))
    again = await link.control(_budget_pause(*ANNOUNCEMENT))  # a resend, or another worker
    assert first.ok
    assert first.seq > 0
    assert (again.ok, again.seq) == (True, 0)
    assert (await _kinds(link))[-4:] == [
        "task_usage",
        "budget_warning",
        "budget_exhausted",
        "executor_paused",
    ]
    assert await _pauses(link) == 1
    state = await link.state()
    assert not state.announce_pending
    (later,) = await link.append_many([producer.request(TaskStarted(task_id="t1"))])
    assert not later.announce


async def test_a_warning_goes_in_once_whoever_sends_it(link: ClusterLink) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=1.0))
    crosser, other = Producer("w:a:1"), Producer("w:b:2")
    (result,) = await link.append_many([await _spend(link, crosser, 0.9)])
    assert (result.crossed, result.announce) == (("warning",), True)
    warning = BudgetWarning(budget_usd=1.0, spent_usd=0.9)
    (by_other,) = await link.append_many([other.request(warning)])
    (by_crosser,) = await link.append_many([crosser.request(warning)])
    assert (by_other.status, by_other.announce) == ("ok", False)
    assert by_crosser.status == "dup"
    assert (await _kinds(link)).count("budget_warning") == 1


async def test_an_exhaustion_announced_without_its_warning_supersedes_it(
    link: ClusterLink,
) -> None:
    # A caller that announces only the exhaustion (the order must hold: no warning after).
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.2))
    producer = Producer("w:a:1")
    await link.append_many([await _spend(link, producer, 0.3)])
    assert (await link.control(_budget_pause(*ANNOUNCEMENT[1:]))).ok
    (late,) = await link.append_many(
        [producer.request(BudgetWarning(budget_usd=0.2, spent_usd=0.3))]
    )
    assert late.status == "dup"
    assert "budget_warning" not in await _kinds(link)


async def test_a_budget_pause_sent_after_the_budget_was_raised_appends_nothing(
    link: ClusterLink,
) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.2))
    producer = Producer("w:a:1")
    await link.append_many([await _spend(link, producer, 0.3)])
    assert (await link.control(ControlCommand(op="budget", budget_usd=5.0))).ok
    assert (await link.control(ControlCommand(op="resume", events=(wire(ExecutorResumed()),)))).ok
    stale = await link.control(_budget_pause(*ANNOUNCEMENT))
    assert (stale.ok, stale.seq) == (True, 0)
    assert not (await link.state()).paused
    assert await _pauses(link) == 0


@attrs.define(eq=False)
class LossyLink:
    """The real link, but the reply to the append that crosses the budget is lost after
    Redis ran the script, and so is the reply to the first budget pause."""

    link: ClusterLink
    lost: list[str] = attrs.field(factory=list)

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        results = await self.link.append_many(requests)
        if any(result.crossed for result in results) and "append" not in self.lost:
            self.lost.append("append")
            raise RedisUnavailable("Redis append: connection reset (reply lost)")
        return results

    async def control(self, command: ControlCommand) -> ControlResult:
        result = await self.link.control(command)
        if "control" not in self.lost:
            self.lost.append("control")
            raise RedisUnavailable("Redis control: connection reset (reply lost)")
        return result

    async def state(self) -> ClusterState:
        return await self.link.state()


async def test_a_worker_whose_crossing_reply_is_lost_announces_once(link: ClusterLink) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.2, on_budget="cancel"))
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    lossy = LossyLink(link)
    forwarder = Forwarder(lossy, "w:a:1")
    forwarder.tokens["t1"] = claim.token
    async with trio.open_nursery() as nursery:
        await nursery.start(forwarder.serve)
        forwarder.queue(TaskStarted(task_id="t1"))
        forwarder.queue(usage(0.3))
        await forwarder.drained()
        nursery.cancel_scope.cancel()
    assert lossy.lost == ["append", "control"]
    assert (await _kinds(link))[-5:] == [
        "task_started",
        "task_usage",
        "budget_warning",
        "budget_exhausted",
        "executor_paused",
    ]
    assert await _pauses(link) == 1
    state = await link.state()
    assert (state.paused_by, state.announce_pending) == ("budget", False)
