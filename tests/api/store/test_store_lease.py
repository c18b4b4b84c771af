"""A session is run by one live process: its lease in the store (issue 17, item 3)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trio
import trio.testing

from api import ServerConfig, StackSettings, open_stack
from api.cli._resume import plan_session
from api.store._exceptions import LeaseLostError, SessionLeasedError
from api.store._lease import (
    LEASE_INTERVAL,
    STALE_AFTER_INTERVALS,
    LeaseHolder,
    LeaseOwner,
    SessionLease,
    acquire_lease,
    claim_session,
    lease_holder,
    release_lease,
    serve_session_lease,
)
from api.store._recorder import StoreRecorder
from api.store._schema import SCHEMA_VERSION, apply_migration, migrate, schema_version
from api.store._store import SessionStore
from events import Publisher, TaskQueued, TaskStarted
from executor import JobFile, load_job_file

TIMEOUT = STALE_AFTER_INTERVALS * LEASE_INTERVAL
#: No process has this pid: it is past the largest pid_max Linux allows (2**22).
DEAD_PID = 2**31 - 1

JOB = """
[[task]]
id = "a"
command = ["true"]
[[task]]
id = "b"
command = ["true"]
"""


def _owner(name: str, *, pid: int | None = None, host: str = "", scope: str = "") -> LeaseOwner:
    """Another process's owner: by default with this pid (alive), on this host."""
    here = LeaseOwner.this_process()
    return LeaseOwner(pid or here.pid, host or here.host, scope or here.pid_scope, f"token-{name}")


A, B, C = _owner("a"), _owner("b"), _owner("c")


@pytest.fixture
def job(tmp_path: Path) -> JobFile:
    path = tmp_path / "job.toml"
    path.write_text(JOB)
    return load_job_file(path)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


def _start_tasks(store: SessionStore, session_id: str) -> None:
    """Both tasks of the session start (the store shows them running)."""
    recorder = StoreRecorder(store, session_id)
    publisher = Publisher()
    publisher.add_listener(recorder)
    for task in ("a", "b"):
        publisher.publish(TaskQueued(task_id=task))
        publisher.publish(TaskStarted(task_id=task))
    recorder.write_now(recorder.pending)


def _states(store: SessionStore, session_id: str) -> dict[str, str]:
    return {task.task_id: task.state for task in store.tasks(session_id)}


def test_a_claim_begins_a_session_and_holds_its_lease(path: Path) -> None:
    store = SessionStore.open(path)
    claim = claim_session(store, job_key="k", job_path="job.toml", owner=A, clock=lambda: 100.0)
    assert not claim.resumed
    assert store.session(claim.session_id).job_key == "k"
    holder = lease_holder(store, claim.session_id)
    assert holder is not None
    assert holder.owner == A
    assert (holder.acquired_at, holder.heartbeat_at, holder.timeout) == (100.0, 100.0, TIMEOUT)
    assert claim.lease.taken_over is None


def test_a_live_lease_refuses_a_second_run_before_it_writes_anything(
    path: Path, job: JobFile
) -> None:
    first = SessionStore.open(path)
    plan = plan_session(first, job, owner=A)
    _start_tasks(first, plan.session_id)
    second = SessionStore.open(path)
    with pytest.raises(SessionLeasedError) as refused:
        plan_session(second, job, owner=B)
    message = str(refused.value)
    assert f"session {plan.session_id} is being run by pid {A.pid}@{A.host}" in message
    assert "last heartbeat" in message
    assert "--fresh" in message
    # Nothing touched: no interrupted marks, no new session, the first run still owns it.
    assert second.interrupted_attempts(plan.session_id) == []
    assert _states(second, plan.session_id) == {"a": "running", "b": "running"}
    assert [session.session_id for session in second.sessions()] == [plan.session_id]
    holder = lease_holder(second, plan.session_id)
    assert holder is not None
    assert holder.owner == A
    # The owner goes on writing.
    first.end_session(plan.session_id, status="finished")
    release_lease(first, plan.lease)
    assert lease_holder(second, plan.session_id) is None


def test_a_released_session_is_resumed_by_the_next_run(path: Path, job: JobFile) -> None:
    first = SessionStore.open(path)
    plan = plan_session(first, job, owner=A)
    _start_tasks(first, plan.session_id)
    first.end_session(plan.session_id, status="interrupted")
    release_lease(first, plan.lease)
    assert first.write_guard is None
    resumed = plan_session(SessionStore.open(path), job, owner=B)
    assert resumed.resumed
    assert resumed.session_id == plan.session_id
    assert resumed.lease.taken_over is None


async def test_a_silent_owner_is_taken_over_and_stops_writing(
    path: Path, job: JobFile, autojump_clock: trio.testing.MockClock
) -> None:
    first = SessionStore.open(path)
    plan = plan_session(first, job, owner=A, clock=trio.current_time)
    _start_tasks(first, plan.session_id)
    sid = plan.session_id
    second = SessionStore.open(path)
    stalled = trio.Event()
    resume_writes = trio.Event()

    async def first_writes(write: Callable[[], object]) -> None:
        # The first run's writes, in this thread; one stalls when told to (a
        # long event-loop stall, SIGSTOP, a disk that hangs).
        if stalled.is_set():
            await resume_writes.wait()
        write()

    with pytest.RaisesGroup(pytest.RaisesExc(LeaseLostError, match="taken over by")):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_session_lease(
                    first,
                    plan.lease,
                    offload=first_writes,
                    clock=trio.current_time,
                    task_status=task_status,
                )
            )
            # Heartbeats keep the lease live long past its timeout.
            await trio.sleep(10 * TIMEOUT)
            with pytest.raises(SessionLeasedError):
                plan_session(second, job, owner=B, clock=trio.current_time)
            stalled.set()
            await trio.sleep(TIMEOUT + LEASE_INTERVAL)
            taken = plan_session(second, job, owner=B, clock=trio.current_time)
            assert taken.resumed
            assert taken.session_id == sid
            assert taken.lease.taken_over is not None
            assert taken.lease.taken_over.owner == A
            assert "last heartbeat is" in (taken.lease.stale_because or "")
            assert second.interrupted_attempts(sid) == [("a", 1), ("b", 1)]
            resume_writes.set()  # the first run wakes: its heartbeat finds it lost
            await trio.sleep_forever()
    # Whatever the first run still writes is refused, changing nothing.
    with pytest.raises(LeaseLostError, match=f"session {sid} was taken over by pid"):
        first.end_session(sid, status="finished")
    assert second.session(sid).status == "running"
    holder = lease_holder(second, sid)
    assert holder is not None
    assert holder.owner == B


def _plant(path: Path, session_id: str, owner: LeaseOwner, heartbeat_at: float) -> None:
    """A lease as another process left it."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("DELETE FROM session_leases WHERE session_id = ?", (session_id,))
        conn.execute(
            "INSERT INTO session_leases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                owner.token,
                owner.pid,
                owner.host,
                owner.pid_scope,
                0.0,
                heartbeat_at,
                TIMEOUT,
            ),
        )
    conn.close()


def test_a_dead_owner_on_this_host_is_taken_over_at_once(path: Path) -> None:
    store = SessionStore.open(path)
    store.begin_session("s")
    _plant(path, "s", _owner("dead", pid=DEAD_PID), heartbeat_at=1_000.0)
    lease = acquire_lease(store, "s", owner=B, clock=lambda: 1_000.5)
    assert lease.taken_over is not None
    assert lease.taken_over.owner.pid == DEAD_PID
    assert lease.stale_because == f"pid {DEAD_PID} is no longer running on this host"


def test_a_dead_pid_on_another_host_waits_for_the_timeout(path: Path) -> None:
    store = SessionStore.open(path)
    store.begin_session("s")
    elsewhere = _owner("far", pid=DEAD_PID, host="far", scope="another-machine")
    _plant(path, "s", elsewhere, heartbeat_at=1_000.0)
    with pytest.raises(SessionLeasedError, match=f"pid {DEAD_PID}@far"):
        acquire_lease(store, "s", owner=B, clock=lambda: 1_000.0 + TIMEOUT)
    lease = acquire_lease(store, "s", owner=B, clock=lambda: 1_000.1 + TIMEOUT)
    assert lease.taken_over == LeaseHolder("s", elsewhere, 0.0, 1_000.0, TIMEOUT)


def _race(path: Path, takers: tuple[LeaseOwner, ...]) -> list[SessionLease | SessionLeasedError]:
    """Each taker, on its own connection and thread, takes the lease at the same moment."""
    stores = [SessionStore.open(path) for _ in takers]
    start = threading.Barrier(len(takers))

    def take(store: SessionStore, owner: LeaseOwner) -> SessionLease | SessionLeasedError:
        start.wait()
        try:
            return acquire_lease(store, "s", owner=owner)
        except SessionLeasedError as exc:
            return exc

    try:
        with ThreadPoolExecutor(len(takers)) as pool:
            return list(pool.map(take, stores, takers))
    finally:
        for store in stores:
            store.close()


def test_two_takers_of_a_stale_lease_race_and_exactly_one_wins(path: Path) -> None:
    store = SessionStore.open(path)
    store.begin_session("s")
    for _ in range(50):
        _plant(path, "s", _owner("dead", pid=DEAD_PID), heartbeat_at=0.0)
        outcomes = _race(path, (B, C))
        won = [outcome for outcome in outcomes if isinstance(outcome, SessionLease)]
        lost = [outcome for outcome in outcomes if isinstance(outcome, SessionLeasedError)]
        assert len(won) == len(lost) == 1, outcomes
        (winner,) = won
        assert winner.taken_over is not None
        assert winner.taken_over.owner.pid == DEAD_PID
        holder = lease_holder(store, "s")
        assert holder is not None
        assert holder.owner == winner.owner
        assert f"is being run by pid {winner.owner.pid}" in str(lost[0])


def test_a_version_three_store_opens_and_gains_leases(path: Path, job: JobFile) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=3)
    conn.close()
    store = SessionStore.open(path)
    assert schema_version(store.conn) == SCHEMA_VERSION
    plan = plan_session(store, job, owner=A)
    assert lease_holder(store, plan.session_id) is not None


def test_a_migration_another_process_applied_meanwhile_is_skipped(path: Path) -> None:
    # Two processes open an old store at once: both read version 3; one
    # migrates while the other waits for the write lock, then the other
    # must not apply version 4 again ("table session_leases already exists").
    first = sqlite3.connect(path, isolation_level=None)
    migrate(first, target=3)
    late = sqlite3.connect(path, isolation_level=None)
    assert schema_version(late) == 3
    migrate(first, target=4)
    apply_migration(late, 4)
    assert schema_version(late) == 4
    first.close()
    late.close()


async def test_a_stack_that_loses_its_lease_pauses_and_stops(
    path: Path, job: JobFile, autojump_clock: trio.testing.MockClock
) -> None:
    store = SessionStore.open(path)
    plan = plan_session(store, job, owner=A)
    settings = StackSettings(
        server=ServerConfig(host="127.0.0.1", port=0), session_id=plan.session_id
    )
    paused: list[str] = []
    with pytest.RaisesGroup(
        pytest.RaisesExc(LeaseLostError, match="events of this run left unwritten"),
        flatten_subgroups=True,
    ):
        async with open_stack(settings, store=store, lease=plan.lease) as stack:
            # Another process takes it over, a long time later by its clock.
            thief = SessionStore.open(path)
            acquire_lease(thief, plan.session_id, owner=B, clock=lambda: 10**10)
            stack.publisher.add_listener(
                lambda item: paused.append(getattr(item.event, "reason", ""))
            )
            await trio.sleep(2 * LEASE_INTERVAL)
    assert any(reason.startswith("session lease lost: session") for reason in paused)
    assert store.session(plan.session_id).status == "running"


def test_the_owner_of_this_process_is_this_process() -> None:
    owner = LeaseOwner.this_process()
    assert owner.pid == os.getpid()
    assert owner == LeaseOwner.this_process()
