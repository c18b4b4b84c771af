"""Processes as ``/proc`` shows them: a pid's state and start time, this host's identity.

A pid alone does not name a process for long (pids are reused); a pid with its
start time (``/proc/<pid>/stat`` field 22, clock ticks since boot) does, for as
long as the machine runs.  ``Processes`` is what the orphan reaper asks of the
system, so that its tests can answer with a fake.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Protocol

import attrs

PROC: Final = Path("/proc")
#: ``/proc/<pid>/stat`` states of a process that has ended (its parent has yet to reap it).
_ENDED_STATES: Final = frozenset("ZXx")


@attrs.frozen
class ProcStat:
    """What the reaper needs of one ``/proc/<pid>/stat``."""

    #: Field 3: R, S, D, T, Z (zombie), ...
    state: str
    #: Field 22: clock ticks after boot.
    start_time: int

    @property
    def running(self) -> bool:
        """Not ended (a zombie has ended; its parent has not reaped it yet)."""
        return self.state not in _ENDED_STATES


def parse_stat(text: str) -> ProcStat:
    """Parse ``/proc/<pid>/stat``; ``ValueError`` naming what was wrong.

    Field 2 (the command name, in parentheses) may hold spaces and parentheses
    itself: the fields after it are counted from its last ``)``.
    """
    _, close, rest = text.rpartition(")")
    fields = rest.split()
    if not close or len(fields) < 20:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    try:
        return ProcStat(state=fields[0], start_time=int(fields[19]))
    except ValueError:
        raise ValueError(f"no start time in field 22 of {text[:80]!r}") from None


class Processes(Protocol):
    """The system's processes, as the reaper reads and signals them."""

    def stat(self, pid: int) -> ProcStat | None:
        """The process ``pid`` (a zombie too), or None if there is none."""
        ...

    def signal_group(self, pgid: int, signum: int) -> None:
        """``os.killpg``: ``ProcessLookupError`` if no such group, ``PermissionError``
        if not ours to signal; signal 0 only checks."""


@attrs.frozen
class ProcFs:
    """``Processes`` read from ``/proc`` (``root``) and signalled with ``os.killpg``."""

    root: Path = PROC

    def stat(self, pid: int) -> ProcStat | None:
        try:
            text = (self.root / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, ProcessLookupError):  # (ESRCH: it ended while read)
            return None
        return parse_stat(text)

    def signal_group(self, pgid: int, signum: int) -> None:
        os.killpg(pgid, signum)

    def host_identity(self) -> str:
        """This boot of this machine, and this pid namespace: where a pid means this process.

        Another host, another boot or another container's pid namespace gives
        another identity; ledgers written under one are not judged under another.
        """
        boot = (self.root / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}/{os.readlink(self.root / 'self/ns/pid')}"
