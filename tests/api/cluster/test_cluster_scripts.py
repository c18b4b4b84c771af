"""The cluster's Lua scripts against a real redis-server: order, exactly-once appends,
fencing, claims and leases, the global budget, control commands, submit and trimming."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from _cluster_link_support import Producer, link_to, submit, wire
from _redis_support import RedisServer

from api.cluster import ClusterLink, ControlCommand, SubmitSettings
from events import (
    BudgetChanged,
    ExecutorPaused,
    ExecutorResumed,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskStarted,
    TaskUsage,
)

pytestmark = pytest.mark.integration

LEASE_MS = 100


@pytest.fixture
async def link(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[ClusterLink]:
    async with link_to(redis_server, request.node.name) as opened:
        yield opened


def usage(task_id: str, cost: float) -> TaskUsage:
    return TaskUsage(task_id=task_id, model="m", input_tokens=10, output_tokens=5, cost_usd=cost)


async def test_appends_take_consecutive_seqs_and_a_repeated_src_seq_counts_once(
    link: ClusterLink,
) -> None:
    producer = Producer("w:a:1")
    paused = producer.request(ExecutorPaused(reason="one"))
    resumed = producer.request(ExecutorResumed(reason="two"))
    results = await link.append_many([paused, resumed])
    assert [(r.status, r.seq) for r in results] == [("ok", 1), ("ok", 2)]
    # A retry after a connection error sends the same requests again, then goes on.
    again = await link.append_many([paused, resumed, producer.request(ExecutorPaused())])
    assert [(r.status, r.seq) for r in again] == [("dup", 0), ("dup", 0), ("ok", 3)]
    events = await link.read_events("0", count=10, block_ms=None)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.event_json for e in events[:2]] == [paused.event_json, resumed.event_json]
    assert (await link.state()).last_seq == 3


async def test_a_batch_of_several_script_runs_keeps_its_order(link: ClusterLink) -> None:
    producer = Producer("w:a:1")
    requests = [producer.request(ExecutorPaused(reason=str(i))) for i in range(250)]
    # A connection dropped after the first 150 landed; the producer sends all 250 again.
    await link.append_many(requests[:150])
    results = await link.append_many(requests)
    assert [r.status for r in results] == ["dup"] * 150 + ["ok"] * 100
    assert [r.seq for r in results[150:]] == list(range(151, 251))
    events = await link.read_events("0", count=300, block_ms=None)
    assert [e.event_json for e in events] == [r.event_json for r in requests]


async def test_two_producers_interleave_in_one_order(link: ClusterLink) -> None:
    first, second = Producer("w:a:1"), Producer("w:b:2")
    await link.append_many([first.request(ExecutorPaused())])
    await link.append_many([second.request(ExecutorPaused())])
    await link.append_many([first.request(ExecutorResumed())])
    events = await link.read_events("0", count=10, block_ms=None)
    assert [e.seq for e in events] == [1, 2, 3]
    # Each producer's src_seq is its own: the second's 1 is not a duplicate of the first's.
    assert (await link.append_many([second.request(ExecutorResumed())]))[0].status == "ok"


async def test_a_retried_usage_batch_is_spent_once(link: ClusterLink) -> None:
    await submit(link, "t1")
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    producer = Producer("w:a:1")
    batch = [
        producer.request(TaskStarted(task_id="t1"), token=claim.token),
        producer.request(usage("t1", 0.25), token=claim.token, cost_usd=0.25),
    ]
    assert [r.status for r in await link.append_many(batch)] == ["ok", "ok"]
    assert [r.status for r in await link.append_many(batch)] == ["dup", "dup"]
    assert (await link.state()).spent_usd == 0.25


async def test_submit_queues_new_tasks_once_and_keeps_the_first_settings(
    link: ClusterLink,
) -> None:
    first = SubmitSettings(budget_usd=5.0, on_budget="suspend", prices="[x]")
    assert await submit(link, "a", "b", "c", settings=first) == 3
    assert await submit(link, "a", "b", "c", settings=SubmitSettings(budget_usd=1.0)) == 0
    assert await submit(link, "c", "d") == 1
    state = await link.state()
    assert (state.budget_usd, state.on_budget, state.prices) == (5.0, "suspend", "[x]")
    assert state.open_tasks == 4
    events = await link.read_events("0", count=10, block_ms=None)
    assert [e.event_json for e in events] == [wire(TaskQueued(task_id=t, name=t)) for t in "abcd"]
    assert (await link.spec("d")).id == "d"


async def test_submit_appends_the_startup_events_of_a_new_session_only(
    link: ClusterLink,
) -> None:
    startup = (wire(BudgetChanged(budget_usd=2.0, by="startup")),)
    settings = SubmitSettings(budget_usd=2.0, start_paused=True, startup_events=startup)
    await submit(link, "a", settings=settings)
    await submit(link, "b", settings=settings)
    events = await link.read_events("0", count=10, block_ms=None)
    assert [e.event_json for e in events] == [
        startup[0],
        wire(TaskQueued(task_id="a", name="a")),
        wire(TaskQueued(task_id="b", name="b")),
    ]
    state = await link.state()
    assert (state.paused, state.paused_by, state.pause_reason) == (
        True,
        "startup",
        "started paused",
    )


async def test_claim_hands_each_task_to_one_worker(link: ClusterLink) -> None:
    await submit(link, "a", "b", "c")
    first = await link.claim("w:a:1", 2, 30_000)
    second = await link.claim("w:b:2", 5, 30_000)
    assert [c.task_id for c in first] == ["a", "b"]
    assert [c.task_id for c in second] == ["c"]
    assert len({c.token for c in (*first, *second)}) == 3
    assert all(c.attempts == 0 and c.reclaimed_from == "" for c in (*first, *second))
    assert await link.claim("w:c:3", 5, 30_000) == []
    assert (await link.state()).workers_live == 3


async def test_claim_returns_nothing_while_paused(link: ClusterLink) -> None:
    await submit(link, "a", settings=SubmitSettings(start_paused=True))
    assert await link.claim("w:a:1", 5, 30_000) == []
    resumed = await link.control(ControlCommand(op="resume", events=(wire(ExecutorResumed()),)))
    assert resumed.ok
    assert resumed.seq == 2
    assert [c.task_id for c in await link.claim("w:a:1", 5, 30_000)] == ["a"]


async def test_a_lease_not_renewed_is_reclaimed_and_the_old_holder_is_fenced(
    link: ClusterLink,
) -> None:
    await submit(link, "t1")
    (held,) = await link.claim("w:old:1", 1, LEASE_MS)
    old = Producer("w:old:1")
    await link.append_many([old.request(TaskStarted(task_id="t1"), token=held.token)])
    assert await link.claim("w:new:2", 1, LEASE_MS) == []  # not expired yet
    await trio.sleep(LEASE_MS * 1.5 / 1000)
    (taken,) = await link.claim("w:new:2", 1, LEASE_MS)
    assert (taken.task_id, taken.attempts, taken.reclaimed_from) == ("t1", 1, "w:old:1")
    assert taken.entry_id == held.entry_id
    # The old holder wakes up (a paused VM, a partition): its usage must not count.
    late = old.request(usage("t1", 1.0), token=held.token, cost_usd=1.0)
    assert (await link.append_many([late]))[0].status == "fenced"
    assert await link.renew("w:old:1", ["t1"], LEASE_MS) == ["t1"]
    new = Producer("w:new:2")
    landed = await link.append_many(
        [new.request(usage("t1", 0.5), token=taken.token, cost_usd=0.5)]
    )
    assert landed[0].status == "ok"
    assert (await link.state()).spent_usd == 0.5


async def test_renewing_keeps_the_lease(link: ClusterLink) -> None:
    await submit(link, "t1")
    await link.claim("w:a:1", 1, LEASE_MS)
    for _ in range(4):
        await trio.sleep(LEASE_MS * 0.5 / 1000)
        assert await link.renew("w:a:1", ["t1"], LEASE_MS) == []
    # Two lease lengths have passed since the claim, but never one since a renewal.
    assert await link.claim("w:b:2", 1, LEASE_MS) == []


async def test_renew_of_a_task_never_held_reports_it_lost(link: ClusterLink) -> None:
    await submit(link, "t1", "t2")
    await link.claim("w:a:1", 1, 30_000)
    assert await link.renew("w:a:1", ["t1", "t2", "nope"], 30_000) == ["t2", "nope"]


async def test_a_released_task_is_claimed_at_once_as_fresh(link: ClusterLink) -> None:
    await submit(link, "t1")
    await link.claim("w:a:1", 1, 30_000)
    tail = await link.control_tail()
    await link.release("w:a:1", ["t1"])
    (taken,) = await link.claim("w:b:2", 1, 30_000)
    assert (taken.task_id, taken.reclaimed_from) == ("t1", "")
    # Other workers are woken, not left to their next poll.
    assert [e.op for e in await link.read_control(tail, block_ms=10)] == ["tasks"]
    # And the releasing worker no longer speaks for the task.
    late = Producer("w:a:1").request(TaskStarted(task_id="t1"), token="1")
    assert (await link.append_many([late]))[0].status == "fenced"


async def test_an_ended_task_is_acknowledged_and_deleted(
    link: ClusterLink, redis_server: RedisServer
) -> None:
    await submit(link, "t1", "t2")
    producer = Producer("w:a:1")
    for claim in await link.claim("w:a:1", 2, 30_000):
        ended = TaskCompleted(task_id=claim.task_id)
        await link.append_many([producer.request(ended, token=claim.token)])
    client = redis_server.client()
    assert client.xlen(link.keys.tasks) == 0
    assert client.xpending(link.keys.tasks, "workers")["pending"] == 0
    assert client.hlen(link.keys.leases) == 0
    assert (await link.state()).open_tasks == 0
    # An event for the ended task from the worker that ended it is fenced too: its
    # lease is gone (a worker reclaimed late could otherwise count twice).
    after = producer.request(usage("t1", 1.0), token="1", cost_usd=1.0)
    assert (await link.append_many([after]))[0].status == "fenced"


async def test_the_budget_warns_once_then_pauses_every_claim_once(link: ClusterLink) -> None:
    await submit(link, "t1", "t2", settings=SubmitSettings(budget_usd=1.0))
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    producer = Producer("w:a:1")

    async def spend(cost: float) -> tuple[tuple[str, ...], bool]:
        request = producer.request(usage("t1", cost), token=claim.token, cost_usd=cost)
        (result,) = await link.append_many([request])
        assert result.status == "ok"
        return result.crossed, result.paused

    assert await spend(0.5) == ((), False)
    assert await spend(0.35) == (("warning",), False)
    assert await spend(0.1) == ((), False)
    assert await spend(0.1) == (("exhausted",), True)
    state = await link.state()
    assert (state.paused, state.paused_by) == (True, "budget")
    assert state.pause_reason == "budget exhausted: spent $1.0500 of $1.0000"
    assert await link.claim("w:b:2", 1, 30_000) == []
    assert await spend(0.2) == ((), False)  # still running: counted, not announced again
    assert (await link.state()).spent_usd == pytest.approx(1.25)


async def test_one_usage_can_cross_both_thresholds(link: ClusterLink) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.1))
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    request = Producer("w:a:1").request(usage("t1", 0.3), token=claim.token, cost_usd=0.3)
    (result,) = await link.append_many([request])
    assert (result.crossed, result.budget_usd, result.spent_usd) == (
        ("warning", "exhausted"),
        0.1,
        0.3,
    )


async def test_a_budget_pause_while_paused_keeps_the_operators_reason(link: ClusterLink) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.1))
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    await link.control(ControlCommand(op="pause", reason="lunch", events=(wire(ExecutorPaused()),)))
    request = Producer("w:a:1").request(usage("t1", 0.3), token=claim.token, cost_usd=0.3)
    (result,) = await link.append_many([request])
    assert "exhausted" in result.crossed
    assert not result.paused
    state = await link.state()
    assert (state.paused_by, state.pause_reason) == ("operator", "lunch")


async def test_resume_is_refused_over_budget_until_it_is_raised(link: ClusterLink) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=0.2))
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    request = Producer("w:a:1").request(usage("t1", 0.3), token=claim.token, cost_usd=0.3)
    await link.append_many([request])
    refused = await link.control(ControlCommand(op="resume", events=(wire(ExecutorResumed()),)))
    assert not refused.ok
    assert refused.reason == (
        "cannot resume: spent $0.3000 of the $0.2000 budget; raise the budget first"
    )
    assert refused.seq == 0
    raised = await link.control(
        ControlCommand(op="budget", budget_usd=1.0, events=(wire(BudgetChanged(budget_usd=1.0)),))
    )
    assert (raised.ok, raised.crossed, raised.budget_usd) == (True, (), 1.0)
    assert (await link.state()).paused  # raising the budget does not resume, as on one host
    assert (await link.control(ControlCommand(op="resume"))).ok
    assert not (await link.state()).paused


async def test_lowering_the_budget_below_the_spend_exhausts_it(link: ClusterLink) -> None:
    await submit(link, "t1", settings=SubmitSettings(budget_usd=10.0))
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    request = Producer("w:a:1").request(usage("t1", 0.5), token=claim.token, cost_usd=0.5)
    await link.append_many([request])
    lowered = await link.control(ControlCommand(op="budget", budget_usd=0.4))
    assert (lowered.crossed, lowered.paused) == (("warning", "exhausted"), True)
    assert await link.claim("w:a:1", 1, 30_000) == []
    removed = await link.control(ControlCommand(op="budget", budget_usd=None))
    assert (removed.crossed, removed.budget_usd) == ((), None)
    assert (await link.control(ControlCommand(op="resume"))).ok


async def test_pause_reaches_the_control_stream_and_a_second_pause_appends_nothing(
    link: ClusterLink,
) -> None:
    await submit(link, "t1")
    tail = await link.control_tail()
    event = wire(ExecutorPaused(reason="maintenance"))
    first = await link.control(
        ControlCommand(op="pause", reason="maintenance", suspend=True, events=(event,))
    )
    second = await link.control(ControlCommand(op="pause", reason="again", events=(event,)))
    assert (first.ok, first.seq, second.ok, second.seq) == (True, 2, True, 0)
    entries = await link.read_control(tail, block_ms=10)
    assert [(e.op, e.reason, e.suspend, e.on_budget) for e in entries] == [
        ("pause", "maintenance", True, "pause"),
        ("pause", "again", None, "pause"),
    ]
    assert (await link.state()).pause_reason == "maintenance"


async def test_cancel_of_a_queued_task_ends_it_there(link: ClusterLink) -> None:
    await submit(link, "a", "b")
    event = wire(TaskCancelled(task_id="a", reason="operator"))
    cancelled = await link.control(ControlCommand(op="cancel", task_id="a", events=(event,)))
    assert (cancelled.ok, cancelled.seq) == (True, 3)
    assert [c.task_id for c in await link.claim("w:a:1", 5, 30_000)] == ["b"]
    again = await link.control(ControlCommand(op="cancel", task_id="a", events=(event,)))
    assert (again.ok, again.reason) == (False, "already ended")
    unknown = await link.control(ControlCommand(op="cancel", task_id="zz"))
    assert (unknown.ok, unknown.reason) == (False, "unknown task")


async def test_cancel_of_a_running_task_goes_to_its_worker(link: ClusterLink) -> None:
    await submit(link, "a")
    await link.claim("w:a:1", 1, 30_000)
    tail = await link.control_tail()
    result = await link.control(ControlCommand(op="cancel", task_id="a", reason="too slow"))
    assert (result.ok, result.seq) == (True, 0)  # the holder appends task_cancelled
    (entry,) = await link.read_control(tail, block_ms=10)
    assert (entry.op, entry.task_id, entry.reason) == ("cancel", "a", "too slow")


async def test_cancel_of_a_task_whose_worker_died_ends_it_there(link: ClusterLink) -> None:
    await submit(link, "a")
    (held,) = await link.claim("w:dead:1", 1, LEASE_MS)
    await trio.sleep(LEASE_MS * 1.5 / 1000)  # its heartbeat and lease expire unrenewed
    event = wire(TaskCancelled(task_id="a", reason="operator"))
    result = await link.control(ControlCommand(op="cancel", task_id="a", events=(event,)))
    assert (result.ok, result.seq) == (True, 2)
    assert await link.claim("w:b:2", 1, LEASE_MS) == []  # not run again by a reclaimer
    late = Producer("w:dead:1").request(TaskStarted(task_id="a"), token=held.token)
    assert (await link.append_many([late]))[0].status == "fenced"


async def test_retry_queues_a_failed_task_again(link: ClusterLink) -> None:
    await submit(link, "a")
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    producer = Producer("w:a:1")
    await link.append_many(
        [
            producer.request(TaskStarted(task_id="a"), token=claim.token),
            producer.request(TaskFailed(task_id="a", error="exit 1"), token=claim.token),
        ]
    )
    requeued = wire(TaskQueued(task_id="a", attempt=2))
    result = await link.control(ControlCommand(op="retry", task_id="a", events=(requeued,)))
    assert result.ok
    (again,) = await link.claim("w:b:2", 1, 30_000)
    assert (again.task_id, again.attempts, again.reclaimed_from) == ("a", 1, "")
    refused = await link.control(ControlCommand(op="retry", task_id="a"))
    assert (refused.ok, refused.reason) == (False, "not ended")


async def test_a_completed_task_is_not_retried(link: ClusterLink) -> None:
    await submit(link, "a")
    (claim,) = await link.claim("w:a:1", 1, 30_000)
    done = Producer("w:a:1").request(TaskCompleted(task_id="a"), token=claim.token)
    await link.append_many([done])
    refused = await link.control(ControlCommand(op="retry", task_id="a"))
    assert (refused.ok, refused.reason) == (False, "completed tasks are not retried")


async def test_the_event_stream_is_trimmed_to_about_its_bound(
    link: ClusterLink, redis_server: RedisServer
) -> None:
    await submit(link, "t", settings=SubmitSettings(events_maxlen=50))
    producer = Producer("w:a:1")
    for _ in range(10):
        await link.append_many([producer.request(ExecutorPaused()) for _ in range(100)])
    length = redis_server.client().xlen(link.keys.events)
    # MAXLEN ~ trims whole macro nodes (100 entries by default): at most one node over.
    assert 50 <= length <= 150
    first = await link.first_seq()
    assert first is not None
    assert first == 1001 - length + 1
    assert (await link.state()).last_seq == 1001


async def test_an_unknown_session_reads_as_empty(link: ClusterLink) -> None:
    state = await link.state()
    assert (state.exists, state.last_seq, state.workers_live, state.open_tasks) == (
        False,
        0,
        0,
        0,
    )
    assert await link.first_seq() is None
    assert await link.claim("w:a:1", 5, 30_000) == []  # no group yet: nothing, no error
    assert await link.read_events("0", count=10, block_ms=None) == []


async def test_live_workers_are_the_ones_renewing(link: ClusterLink) -> None:
    await submit(link, "t1")
    await link.renew("w:short:1", [], LEASE_MS)
    await link.renew("w:long:2", [], 30_000)
    await link.claim("w:gone:3", 0, 30_000)
    await link.renew("w:gone:3", [], 30_000)
    assert (await link.state()).workers_live == 3
    await link.forget_worker("w:gone:3")  # a graceful exit
    await trio.sleep(LEASE_MS * 1.5 / 1000)  # the short one stopped renewing
    assert (await link.state()).workers_live == 1
