"""Which process runs a session: a lease in the store, one live owner at a time.

``runcast run`` claims the session it will run (:func:`claim_session`) before
it writes anything to it: in one write transaction it picks the job's
unfinished session (or begins a new one) and takes that session's lease, a row
naming the owner (pid@host and a random token) and the time of its last
heartbeat. While the run lives, :func:`serve_session_lease` renews the
heartbeat; a clean end deletes the row (:func:`release_lease`).

A second run that finds the lease held by a live owner is refused
(:class:`SessionLeasedError`) having written nothing. A lease is stale, and
taken over as a resume, once its heartbeat is older than the owner's timeout,
or at once when the owner's pid is gone from this machine (same boot, same pid
namespace: elsewhere a pid says nothing).

SQLite's locking makes the claim atomic: ``BEGIN IMMEDIATE`` takes the store's
one write lock before the lease is read (in WAL mode readers go on; another
writer waits, up to the busy timeout, then reads the committed lease), and the
takeover is a compare-and-set on the old owner's token.

A run that stalls past its timeout may find its session taken over; it must
then write nothing more. While it holds the lease, every write transaction of
its store first checks, under that same write lock, that the lease still names
it (:class:`LeaseCheck`, the store's ``write_guard``): a write after a takeover
fails with :class:`LeaseLostError` and changes nothing, and the heartbeat
notices the loss even when the run has nothing else to write.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import attrs
import trio

from ._exceptions import LeaseLostError, SessionLeasedError, UnknownSessionError
from ._offload import Offload, to_worker_thread
from ._store import SessionStore, _now

#: Seconds between heartbeats.
LEASE_INTERVAL = 5.0
#: A lease whose heartbeat is this many intervals old is stale.
STALE_AFTER_INTERVALS = 3

Clock = Callable[[], float]

_COLUMNS = "owner_token, pid, host, pid_scope, acquired_at, heartbeat_at, timeout_seconds"


@functools.cache
def _pid_scope() -> str:
    """Where a pid names one process: this boot of this machine, this pid namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return f"host:{socket.gethostname()}"
    return f"{boot}/{namespace}"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs here (a zombie, dead but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc to tell a zombie by
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@attrs.frozen
class LeaseOwner:
    """A process that may hold leases; ``token`` tells it from a later one with its pid."""

    pid: int
    host: str
    pid_scope: str
    token: str

    @classmethod
    def this_process(cls) -> LeaseOwner:
        """This process (its token is drawn once per process: the process is the owner)."""
        return _process_owner(os.getpid())

    def __str__(self) -> str:
        return f"pid {self.pid}@{self.host}"


@functools.cache
def _process_owner(pid: int) -> LeaseOwner:
    return LeaseOwner(pid, socket.gethostname(), _pid_scope(), secrets.token_hex(16))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@attrs.frozen
class LeaseHolder:
    """A session's lease as the store holds it."""

    session_id: str
    owner: LeaseOwner
    acquired_at: float
    heartbeat_at: float
    timeout: float

    def stale_reason(self, now: float) -> str | None:
        """Why the lease may be taken over; None while its owner is live."""
        age = now - self.heartbeat_at
        if age > self.timeout:
            return f"its last heartbeat is {age:.1f} s old (timeout {self.timeout:g} s)"
        if self.owner.pid_scope == _pid_scope() and not pid_alive(self.owner.pid):
            return f"pid {self.owner.pid} is no longer running on this host"
        return None

    def describe(self, now: float) -> str:
        return (
            f"{self.owner} (last heartbeat {now - self.heartbeat_at:.1f} s ago, "
            f"at {_iso(self.heartbeat_at)})"
        )


@attrs.frozen
class SessionLease:
    """This process's hold on one session."""

    session_id: str
    owner: LeaseOwner
    interval: float = LEASE_INTERVAL
    #: The stale lease this one replaced (None: the session was free).
    taken_over: LeaseHolder | None = None
    #: Why ``taken_over`` was stale.
    stale_because: str | None = None

    @property
    def timeout(self) -> float:
        return STALE_AFTER_INTERVALS * self.interval


@attrs.frozen
class SessionClaim:
    """The session a run goes on with, and its lease."""

    lease: SessionLease
    resumed: bool

    @property
    def session_id(self) -> str:
        return self.lease.session_id


def _holder(conn: sqlite3.Connection, session_id: str) -> LeaseHolder | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM session_leases WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None:
        return None
    token, pid, host, scope, acquired_at, heartbeat_at, timeout = row
    owner = LeaseOwner(int(pid), str(host), str(scope), str(token))
    return LeaseHolder(session_id, owner, float(acquired_at), float(heartbeat_at), float(timeout))


def lease_holder(store: SessionStore, session_id: str) -> LeaseHolder | None:
    """Who holds ``session_id``'s lease, if anyone."""
    return _holder(store.conn, session_id)


def _lost(conn: sqlite3.Connection, lease: SessionLease) -> LeaseLostError:
    holder = _holder(conn, lease.session_id)
    by = "released by another process" if holder is None else f"taken over by {holder.owner}"
    since = "" if holder is None else f" at {_iso(holder.acquired_at)}"
    return LeaseLostError(
        f"session {lease.session_id} was {by}{since} while this run ({lease.owner}) ran it "
        f"(a stall longer than its {lease.timeout:g} s lease?); this run stopped writing to it"
    )


@attrs.frozen
class LeaseCheck:
    """A store's ``write_guard`` while a run holds ``lease``: refuses every write once
    the lease names someone else."""

    lease: SessionLease

    def __call__(self, conn: sqlite3.Connection) -> None:
        (token,) = conn.execute(
            "SELECT COALESCE(MAX(owner_token), '') FROM session_leases WHERE session_id = ?",
            (self.lease.session_id,),
        ).fetchone()
        if token != self.lease.owner.token:
            raise _lost(conn, self.lease)


def _take(
    conn: sqlite3.Connection, session_id: str, owner: LeaseOwner, now: float, interval: float
) -> SessionLease | LeaseHolder:
    """In a write transaction: the lease on ``session_id``, or the live holder that keeps it."""
    lease = SessionLease(session_id, owner, interval)
    values = (owner.token, owner.pid, owner.host, owner.pid_scope, now, now, lease.timeout)
    holder = _holder(conn, session_id)
    if holder is None:
        conn.execute(
            f"INSERT INTO session_leases (session_id, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, *values),
        )
        return lease
    if holder.owner.token == owner.token:  # this process claims it again
        conn.execute(
            "UPDATE session_leases SET heartbeat_at = ?, timeout_seconds = ? "
            "WHERE session_id = ? AND owner_token = ?",
            (now, lease.timeout, session_id, owner.token),
        )
        return lease
    reason = holder.stale_reason(now)
    if reason is None:
        return holder
    taken = conn.execute(
        "UPDATE session_leases SET owner_token = ?, pid = ?, host = ?, pid_scope = ?, "
        "acquired_at = ?, heartbeat_at = ?, timeout_seconds = ? "
        "WHERE session_id = ? AND owner_token = ?",
        (*values, session_id, holder.owner.token),
    )
    if taken.rowcount != 1:  # cannot happen under the write lock; never take it blind
        return _holder(conn, session_id) or holder
    return attrs.evolve(lease, taken_over=holder, stale_because=reason)


def _refusal(holder: LeaseHolder, now: float) -> SessionLeasedError:
    return SessionLeasedError(
        f"session {holder.session_id} is being run by {holder.describe(now)}; this run "
        "changed nothing. Wait for that run to end or stop it (a lease whose owner died "
        f"is taken over, a silent one after {holder.timeout:g} s), or start a new session "
        "with --fresh"
    )


@attrs.frozen
class _Taken:
    outcome: SessionLease | LeaseHolder
    resumed: bool
    now: float


def _hold(
    store: SessionStore, pick: Callable[[sqlite3.Connection], _Taken]
) -> tuple[SessionLease, bool]:
    """Run ``pick`` in a write transaction, then refuse, or guard the store's writes
    with the lease it took; the lease and whether the session is resumed."""
    taken: list[_Taken] = []
    store._transaction(lambda conn: taken.append(pick(conn)))
    (result,) = taken
    if isinstance(result.outcome, LeaseHolder):
        raise _refusal(result.outcome, result.now)
    store.write_guard = LeaseCheck(result.outcome)
    return result.outcome, result.resumed


def acquire_lease(
    store: SessionStore,
    session_id: str,
    *,
    owner: LeaseOwner | None = None,
    interval: float = LEASE_INTERVAL,
    clock: Clock = time.time,
) -> SessionLease:
    """Take ``session_id``'s lease (free, stale or already ours), or raise
    :class:`SessionLeasedError` having written nothing. From then on every
    write of ``store`` checks the lease first."""
    taker = owner or LeaseOwner.this_process()

    def pick(conn: sqlite3.Connection) -> _Taken:
        now = clock()  # under the write lock: waiting for it does not age the lease
        return _Taken(_take(conn, session_id, taker, now, interval), True, now)

    lease, _ = _hold(store, pick)
    return lease


def claim_session(
    store: SessionStore,
    *,
    job_key: str,
    job_path: str | None = None,
    fresh: bool = False,
    reopen: str | None = None,
    owner: LeaseOwner | None = None,
    interval: float = LEASE_INTERVAL,
    clock: Clock = time.time,
) -> SessionClaim:
    """In one write transaction: the job's newest unfinished session (unless
    ``fresh``) or a new one, and its lease; :class:`SessionLeasedError` (nothing
    written) while a live process holds it. Then every write of ``store``
    checks the lease first.

    ``reopen`` (``--retry-failed``): that session (``newest_session``), whatever
    its status, running again.
    """
    taker = owner or LeaseOwner.this_process()

    def pick(conn: sqlite3.Connection) -> _Taken:
        now = clock()
        if reopen is not None:
            conn.execute(
                "UPDATE sessions SET status = 'running', ended_at = NULL WHERE session_id = ?",
                (reopen,),
            )
            return _Taken(_take(conn, reopen, taker, now, interval), True, now)
        session_id = None if fresh else store.find_resumable(job_key)
        resumed = session_id is not None
        if session_id is None:
            session_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO sessions (session_id, job_key, job_path, created_at) "
                "VALUES (?, ?, ?, ?)",
                (session_id, job_key, job_path, _now()),
            )
        return _Taken(_take(conn, session_id, taker, now, interval), resumed, now)

    return SessionClaim(*_hold(store, pick))


def newest_session(store: SessionStore, job_key: str) -> str:
    """The job's newest session, whatever its status; ``UnknownSessionError`` if none."""
    row = store.conn.execute(
        "SELECT session_id FROM sessions WHERE job_key = ? "
        "ORDER BY created_at DESC, rowid DESC LIMIT 1",
        (job_key,),
    ).fetchone()
    if row is None:
        raise UnknownSessionError(
            "the store holds no session of this job file (same task ids) to retry; "
            "run it without --retry-failed first"
        )
    return str(row[0])


def _change_own(store: SessionStore, lease: SessionLease, sql: str, *params: object) -> None:
    """Run ``sql`` (which names the lease by session and token last) in a write
    transaction; :class:`LeaseLostError` if it matched no row: not ours any more."""
    changed: list[int] = []
    store._transaction(
        lambda conn: changed.append(
            conn.execute(sql, (*params, lease.session_id, lease.owner.token)).rowcount
        )
    )
    if changed != [1]:
        raise _lost(store.conn, lease)


def renew_lease(store: SessionStore, lease: SessionLease, *, clock: Clock = time.time) -> None:
    """Write a heartbeat; :class:`LeaseLostError` if the lease is no longer ours."""
    _change_own(
        store,
        lease,
        "UPDATE session_leases SET heartbeat_at = ? WHERE session_id = ? AND owner_token = ?",
        clock(),
    )


def release_lease(store: SessionStore, lease: SessionLease) -> None:
    """Let the session go (a clean end); :class:`LeaseLostError` if it was not ours."""
    _change_own(store, lease, "DELETE FROM session_leases WHERE session_id = ? AND owner_token = ?")
    if store.write_guard == LeaseCheck(lease):
        store.write_guard = None


async def serve_session_lease(
    store: SessionStore,
    lease: SessionLease,
    *,
    offload: Offload = to_worker_thread,
    clock: Clock = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Renew ``lease`` every ``lease.interval`` seconds until cancelled; raises
    :class:`LeaseLostError` once another process has taken the session over."""
    renew = functools.partial(renew_lease, store, lease, clock=clock)
    task_status.started()
    while True:
        await trio.sleep(lease.interval)
        await offload(renew)
