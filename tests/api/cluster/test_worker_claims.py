"""The worker's claims and control follower, with a fake link and a fake local executor."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import attrs
import trio
import trio.testing
from _worker_support import FakeLink

from api.cluster import Claim, ClusterState, ControlEntry
from api.cluster._claims import Claims, interrupted_error
from api.cluster._control_follower import ControlFollower
from api.cluster._forwarder import Forwarder
from events import Published, TaskCancelled
from executor import CommandSpec

INSTANCE = "w:me:00000000"


@attrs.define(eq=False)
class FakeExecutor:
    """Records what the worker asks of its local executor."""

    concurrency: int = 2
    submitted: list[tuple[CommandSpec, int]] = attrs.field(factory=list)
    cancelled: list[tuple[str, str]] = attrs.field(factory=list)
    states: dict[str, str] = attrs.field(factory=dict)
    known: set[str] = attrs.field(factory=set)
    pauses: list[dict[str, Any]] = attrs.field(factory=list)
    resumes: int = 0

    def has_task(self, task_id: str) -> bool:
        return task_id in self.known

    def submit_command(self, spec: CommandSpec, *, attempts_used: int = 0) -> None:
        assert spec.id is not None
        self.known.add(spec.id)
        self.states[spec.id] = "running"
        self.submitted.append((spec, attempts_used))

    def cancel(self, task_id: str, *, reason: str) -> bool:
        self.cancelled.append((task_id, reason))
        return True

    def task(self, task_id: str) -> SimpleNamespace:
        return SimpleNamespace(state=self.states[task_id])

    def pause(self, **options: Any) -> None:
        self.pauses.append(options)

    def resume(self, **_options: Any) -> None:
        self.resumes += 1


def _claims(link: FakeLink, executor: FakeExecutor) -> tuple[Claims, Forwarder]:
    forwarder = Forwarder(link, INSTANCE)
    claims = Claims(link, INSTANCE, executor, forwarder, lease_ms=3000)  # type: ignore[arg-type]
    return claims, forwarder


def _spec(task_id: str, retries: int = 0) -> CommandSpec:
    return CommandSpec(command=["true"], id=task_id, retries=retries)


def _claim(task_id: str, attempts: int = 0, reclaimed_from: str = "") -> Claim:
    return Claim(task_id, "1-0", f"{INSTANCE}|{attempts + 1}", attempts, reclaimed_from)


async def test_claims_as_many_as_free_slots_and_runs_them_with_their_attempts(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(specs={"a": _spec("a"), "b": _spec("b", retries=2)})
    link.claims = [[_claim("a"), _claim("b", attempts=1)]]
    executor = FakeExecutor()
    claims, forwarder = _claims(link, executor)
    await nursery.start(claims.serve_claims)
    await trio.sleep(1.5)
    assert [(spec.id, used) for spec, used in executor.submitted] == [("a", 0), ("b", 1)]
    assert forwarder.tokens == {"a": f"{INSTANCE}|1", "b": f"{INSTANCE}|2"}
    assert (claims.local_active, claims.free_slots) == (2, 0)
    assert forwarder.pending == 0  # not reclaimed: no interrupted attempt to end


async def test_a_reclaimed_task_ends_its_interrupted_attempt_first(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(specs={"a": _spec("a", retries=1), "b": _spec("b", retries=1)})
    link.claims = [[_claim("a", 1, "w:dead:1"), _claim("b", 2, "w:dead:1")]]
    executor = FakeExecutor()
    claims, forwarder = _claims(link, executor)
    nursery.start_soon(forwarder.serve)
    await nursery.start(claims.serve_claims)
    await trio.sleep(1.5)
    await forwarder.drained()
    # a has a retry left: its attempt 1 retries, attempt 2 runs here; b has none: it fails.
    assert [(spec.id, used) for spec, used in executor.submitted] == [("a", 1)]
    assert [(r.task_id, r.kind) for r in link.stream] == [
        ("a", "task_retrying"),
        ("b", "task_failed"),
    ]
    error = interrupted_error("w:dead:1")
    assert error == "interrupted: worker w:dead:1 stopped renewing its lease"
    assert [f["data"]["error"] for f in link.frames()] == [error, error]
    assert [f["data"]["attempt"] for f in link.frames()] == [1, 2]
    assert claims.reclaimed == 2
    assert "b" not in claims.held  # its end is appended: its lease is gone
    assert claims.local_active == 1


async def test_a_task_this_executor_ran_before_runs_under_a_fresh_local_id(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(specs={"a": _spec("a", retries=3)})
    link.claims = [[_claim("a", attempts=1)]]
    executor = FakeExecutor(known={"a"})
    claims, forwarder = _claims(link, executor)
    await nursery.start(claims.serve_claims)
    await trio.sleep(1.5)
    ((spec, used),) = executor.submitted
    assert (spec.id, used) == ("a~1", 1)
    assert forwarder.cluster_ids == {"a~1": "a"}


async def test_nothing_is_claimed_while_paused_or_backlogged(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(specs={"a": _spec("a")}, gate=trio.Event())
    link.claims = [[_claim("a")]]
    executor = FakeExecutor()
    claims, forwarder = _claims(link, executor)
    forwarder.accounting_bound = 2
    claims.paused = True
    await nursery.start(claims.serve_claims)
    await trio.sleep(5)
    assert executor.submitted == []
    claims.paused = False
    for attempt in (1, 2):  # more than half the buffer waits for Redis
        forwarder.queue(TaskCancelled(task_id="x", reason=str(attempt)))
    claims.wake()
    await trio.sleep(5)
    assert executor.submitted == []
    forwarder._buffer.clear()
    forwarder.accounting_held = 0
    claims.wake()
    await trio.sleep(1.5)
    assert [spec.id for spec, _ in executor.submitted] == ["a"]


async def test_a_lost_lease_cancels_the_task_here(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(specs={"a": _spec("a"), "b": _spec("b")})
    link.claims = [[_claim("a"), _claim("b")]]
    executor = FakeExecutor()
    claims, forwarder = _claims(link, executor)
    await nursery.start(claims.serve_claims)
    await trio.sleep(1.5)
    link.lost = ["a"]
    await claims.renew_once()
    assert link.renewed == [["a", "b"]]
    assert executor.cancelled == [("a", "lease lost")]
    assert set(claims.held) == {"b"}
    assert "a" not in forwarder.tokens


async def test_stopping_hands_back_waiting_tasks_without_ending_them(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(specs={"a": _spec("a"), "b": _spec("b")})
    link.claims = [[_claim("a"), _claim("b")]]
    executor = FakeExecutor()
    claims, forwarder = _claims(link, executor)
    await nursery.start(claims.serve_claims)
    await trio.sleep(1.5)
    executor.states["b"] = "retrying"
    assert await claims.hand_back_waiting() == ["b"]
    assert link.released == ["b"]
    assert executor.cancelled == [("b", "handed back: the worker is stopping")]
    assert forwarder.suppressed_ends == {"b"}
    assert set(claims.held) == {"a"}
    assert not claims.claiming


def _entry(op: str, **fields: Any) -> ControlEntry:
    values = {"task_id": "*", "by": "operator", "reason": "", "suspend": None, "on_budget": ""}
    return ControlEntry("1-0", op, **{**values, **fields})


async def test_control_pause_resume_and_cancel_reach_the_local_executor(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    link = FakeLink(specs={"a": _spec("a"), "b": _spec("b")})
    link.claims = [[_claim("a"), _claim("b")]]
    executor = FakeExecutor()
    claims, _ = _claims(link, executor)
    await nursery.start(claims.serve_claims)
    await trio.sleep(1.5)
    follower = ControlFollower(link, executor, claims)  # type: ignore[arg-type]
    link.control_entries = [
        _entry("pause", by="operator", reason="lunch", suspend=True),
        _entry("cancel", task_id="a", reason="not needed"),
        _entry("cancel", task_id="elsewhere"),
    ]
    await nursery.start(follower.serve, "0-0")
    await trio.sleep(1.5)
    assert executor.pauses == [{"by": "operator", "reason": "lunch", "suspend": True}]
    assert claims.paused
    assert executor.cancelled == [("a", "not needed")]
    # A budget pause with on_budget = cancel cancels what runs here, as on one host.
    link.control_entries = [
        _entry("pause", by="budget", reason="budget exhausted: x", on_budget="cancel"),
        _entry("resume", by="operator"),
    ]
    await trio.sleep(1.5)
    assert executor.cancelled[1:] == [
        ("a", "cancelled by budget exhausted: x"),
        ("b", "cancelled by budget exhausted: x"),
    ]
    assert executor.resumes == 1
    assert not claims.paused


async def test_the_state_read_at_start_pauses_a_worker_joining_a_paused_session() -> None:
    executor = FakeExecutor()
    claims, _ = _claims(FakeLink(), executor)
    follower = ControlFollower(FakeLink(), executor, claims)  # type: ignore[arg-type]
    state = ClusterState(
        paused=True,
        paused_by="budget",
        pause_reason="budget exhausted",
        budget_usd=1.0,
        spent_usd=1.0,
        on_budget="suspend",
        prices="",
        last_seq=9,
        workers_live=2,
    )
    follower.apply_state(state)
    assert executor.pauses == [{"by": "budget", "reason": "budget exhausted", "suspend": True}]
    assert claims.paused


def test_a_task_ended_here_frees_its_slot() -> None:
    executor = FakeExecutor()
    claims, _ = _claims(FakeLink(), executor)
    # Taken as _take leaves it (without running the claim loop).
    from api.cluster._claims import HeldTask

    held = HeldTask("a", "a~1", "t")
    claims.held["a"] = held
    claims._by_local["a~1"] = held
    claims.local_active = 1
    published = Published(1, None, TaskCancelled(task_id="a~1"), "")  # type: ignore[arg-type]
    claims.on_event(published)
    assert (claims.local_active, held.local) == (0, False)
    assert "a" in claims.held  # renewed until its end is appended
    claims.on_end_appended("a")
    assert claims.held == {}
