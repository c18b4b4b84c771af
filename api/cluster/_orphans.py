"""Same-host reaping of a SIGKILLed worker's commands, by ledgers of their process groups.

Each command runs in a process group of its own (so pause and cancel reach all
of it); a worker killed with SIGKILL (the OOM killer, ``kill -9``) cannot stop
them, and once its lease passes another worker runs the task again: the same
agent would run twice and spend twice.  So every worker keeps a *ledger* in the
state directory (``_ledger.default_state_dir``): one JSON file naming the worker
(pid, start time) and each group its commands run in (pgid, the leader's start
time, the task), written whole as groups start and end (``_ledger``: a temporary
file renamed over it, so a reader sees the old ledger or the new one).

Every worker sweeps the directory at start, before it claims anything, and every
few seconds (:meth:`OrphanReaper.serve`).  A ledger whose owner is gone, a
zombie, or whose pid is now another process's (another start time) belongs to a
dead worker: each of its groups whose leader is still the process recorded (same
start time: the pgid was not reused) and which still exists gets SIGKILL, and
the ledger is removed.  A live worker's ledger is never touched; a worker
removes its own when it stops, unless a group of its outlived its stop (then the
next worker reaps it).  One sweep at a time (``flock``): two workers do not reap
the same ledger.  A ledger from another host, boot or pid namespace (a state
directory shared by mistake) is left alone: its pids mean nothing here.

A group whose leader has exited cannot be told from one that reuses its id: it
is left alone, logged and counted (``OrphanReaper.unverified``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import attrs
import structlog
import trio

from ._ledger import LEDGER_NAME, TMP_NAME, GroupEntry, Ledger, Owner, open_state_dir, parse_ledger
from ._proc import Processes, ProcFs

log = structlog.get_logger("runcast.cluster")

#: Seconds between sweeps at most (a third of the lease if that is shorter).
REAP_EVERY: Final = 2.0
_SWEEP_LOCK: Final = ".sweep.lock"


@contextlib.contextmanager
def _sweep_lock(directory: Path) -> Iterator[bool]:
    """Whether this sweep may go on: False while another worker's sweep holds the lock."""
    fd = os.open(directory / _SWEEP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # (releases the lock)


@attrs.define(eq=False)
class OrphanReaper:
    """Sweeps the state directory for dead workers' ledgers (see the module docstring)."""

    directory: Path
    me: Owner
    host: str
    _processes: Processes = attrs.field(repr=False)
    #: Groups of dead workers killed.
    killed: int = 0
    #: Groups of dead workers found alive without their leader: left alone.
    unverified: int = 0
    ledgers_removed: int = 0
    #: Ledgers that could not be parsed: renamed ``*.unreadable``, left alone.
    unreadable: int = 0
    sweep_errors: int = 0

    async def serve(
        self, every: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Sweep now, then every ``every`` seconds (the first before ``started``).

        In the event loop, as the ledger's writes are: a sweep lists one small
        directory and reads ``/proc`` and, for a dead worker, its ledger (tens of
        microseconds; a thread's round trip costs more).
        """
        self.sweep()
        task_status.started()
        while True:
            await trio.sleep(every)
            self.sweep()

    def sweep(self) -> list[GroupEntry]:
        """Reap every dead worker's ledger; returns the groups killed."""
        try:
            with _sweep_lock(self.directory) as mine:
                if not mine:
                    return []
                killed: list[GroupEntry] = []
                for name in sorted(os.listdir(self.directory)):
                    killed += self._look_at(name)
                return killed
        except (OSError, ValueError) as exc:  # (ValueError: a /proc stat line not understood)
            self.sweep_errors += 1
            log.error(
                "cannot sweep the state directory", directory=str(self.directory), error=str(exc)
            )
            return []

    def _look_at(self, name: str) -> list[GroupEntry]:
        path = self.directory / name
        if tmp := TMP_NAME.fullmatch(name):
            if self._dead(Owner(int(tmp[1]), int(tmp[2]))):
                path.unlink(missing_ok=True)  # a write the dead worker did not finish
            return []
        found = LEDGER_NAME.fullmatch(name)
        if found is None:
            return []
        owner = Owner(int(found[1]), int(found[2]))
        if not self._dead(owner):
            return []
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            ledger = parse_ledger(text)
            if ledger.owner != owner:
                raise ValueError(f"it names worker {ledger.owner}, its file name {owner}")
        except ValueError as exc:
            self.unreadable += 1
            log.error("unreadable ledger set aside", ledger=str(path), error=str(exc))
            os.replace(path, path.with_name(f"{name}.unreadable"))
            return []
        if ledger.host != self.host:
            return []  # another host's, boot's or pid namespace's: its pids are not ours
        killed = [group for group in ledger.groups if self._reap(group, ledger.instance)]
        path.unlink(missing_ok=True)
        self.ledgers_removed += 1
        log.info("a dead worker's ledger removed", ledger=name, worker=ledger.instance)
        return killed

    def _dead(self, owner: Owner) -> bool:
        if owner == self.me:
            return False
        found = self._processes.stat(owner.pid)
        return found is None or not found.running or found.start_time != owner.start_time

    def _reap(self, group: GroupEntry, worker: str) -> bool:
        """SIGKILL ``group`` if its leader is still the process recorded; whether it was."""
        leader = self._processes.stat(group.pgid)
        if leader is None:
            if self._group_exists(group.pgid):
                self.unverified += 1
                log.warning(
                    "a dead worker's command group outlived its leader: left alone "
                    "(its id may be another group's now)",
                    task_id=group.task_id,
                    pgid=group.pgid,
                    worker=worker,
                )
            return False
        if leader.start_time != group.leader_start_time or not self._group_exists(group.pgid):
            return False  # ended; its id is another process's now
        try:
            self._processes.signal_group(group.pgid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        except PermissionError as exc:
            log.error("cannot kill a dead worker's command", pgid=group.pgid, error=str(exc))
            return False
        self.killed += 1
        log.warning(
            "killed a dead worker's command",
            task_id=group.task_id,
            pgid=group.pgid,
            worker=worker,
        )
        return True

    def _group_exists(self, pgid: int) -> bool:
        try:
            self._processes.signal_group(pgid, 0)
        except (ProcessLookupError, PermissionError):  # none, or another user's: not ours
            return False
        return True


@attrs.frozen
class OrphanGuard:
    """A worker's ledger and its reaper of other workers' (``open_orphan_guard``)."""

    ledger: Ledger
    reaper: OrphanReaper


def open_orphan_guard(
    directory: Path, instance: str, processes: ProcFs | None = None
) -> OrphanGuard | None:
    """Open the state directory and write this worker's empty ledger in it.

    ``ClusterError`` if the directory is unusable; None (logged) where there is
    no ``/proc`` to tell processes apart: then nothing is recorded or reaped.
    """
    processes = processes or ProcFs()
    open_state_dir(directory)
    try:
        found = processes.stat(os.getpid())
        host = processes.host_identity() if found is not None else ""
    except OSError as exc:
        log.warning("no /proc: a killed worker's commands cannot be reaped", error=str(exc))
        return None
    if found is None:
        log.warning("no /proc: a killed worker's commands cannot be reaped")
        return None
    me = Owner(os.getpid(), found.start_time)
    ledger = Ledger(directory / me.ledger_name, me, host, instance, processes)
    ledger.create()
    return OrphanGuard(ledger, OrphanReaper(directory, me, host, processes))
