"""A fake ``Processes`` for the orphan reaper's unit tests, and ledgers to plant.

``FakeProcesses`` answers ``stat`` from ``procs`` (pid -> ``ProcStat``) and
``signal_group`` from ``groups`` (the pgids that exist; ``foreign`` ones are
another user's), recording every signal sent.
"""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import attrs

from api.cluster._ledger import GroupEntry, LedgerContent, Owner
from api.cluster._proc import ProcStat

HOST = "boot-1/pid:[4026531836]"


@attrs.define(eq=False)
class FakeProcesses:
    procs: dict[int, ProcStat] = attrs.field(factory=dict)
    groups: set[int] = attrs.field(factory=set)
    foreign: set[int] = attrs.field(factory=set)
    sent: list[tuple[int, int]] = attrs.field(factory=list)

    def run(self, pid: int, start_time: int, state: str = "S") -> None:
        self.procs[pid] = ProcStat(state=state, start_time=start_time)

    def stat(self, pid: int) -> ProcStat | None:
        return self.procs.get(pid)

    def signal_group(self, pgid: int, signum: int) -> None:
        if pgid in self.foreign:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        if pgid not in self.groups:
            raise ProcessLookupError(errno.ESRCH, "No such process")
        self.sent.append((pgid, signum))
        if signum == signal.SIGKILL:
            self.groups.discard(pgid)

    @property
    def killed(self) -> list[int]:
        return [pgid for pgid, signum in self.sent if signum == signal.SIGKILL]


def plant_ledger(
    directory: Path,
    owner: Owner,
    groups: tuple[GroupEntry, ...],
    *,
    host: str = HOST,
    instance: str = "w:dead:0000",
) -> Path:
    """Write a ledger as a worker ``owner`` would have; returns its path."""
    path = directory / owner.ledger_name
    path.write_text(LedgerContent(owner, host, instance, groups).to_json(), encoding="utf-8")
    return path
