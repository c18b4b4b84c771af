"""A worker's ledger: the process groups its commands run in, on disk (see ``_orphans``).

One JSON file per worker in the state directory, named by the worker's pid and
start time, written whole each time a group starts or ends (``write_atomically``:
a temporary file renamed over it, so a reader sees the old ledger or the new one,
never half of one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import structlog
import trio

from ._exceptions import ClusterError
from ._proc import Processes

log = structlog.get_logger("runcast.cluster")

STATE_DIR_ENV: Final = "RUNCAST_STATE_DIR"
LEDGER_FORMAT: Final = 1
LEDGER_NAME: Final = re.compile(r"worker-(\d+)-(\d+)\.json")
#: Seconds before a failed write is tried again, doubling up to ``RETRY_MAX``.
RETRY_FIRST: Final = 1.0
RETRY_MAX: Final = 30.0
#: A ledger's temporary file, while it is written.
TMP_NAME: Final = re.compile(r"\.worker-(\d+)-(\d+)\.json\.tmp")


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$RUNCAST_STATE_DIR``, else ``$XDG_RUNTIME_DIR/runcast``, else ``/tmp/runcast-<uid>``."""
    if explicit := environ.get(STATE_DIR_ENV):
        return Path(explicit)
    if runtime := environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "runcast"
    return Path("/tmp") / f"runcast-{os.getuid()}"


def open_state_dir(path: Path) -> Path:
    """Make ``path`` (mode 0700) if missing; ``ClusterError`` unless it is a directory
    of this user's that no one else may write (others' ledgers would name what we kill)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except FileExistsError:
        info = path.lstat()  # (a file, or a link to one: refused below)
    except OSError as exc:
        raise ClusterError(f"state directory {path} ({STATE_DIR_ENV}): {exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise ClusterError(
            f"state directory {path} ({STATE_DIR_ENV}) is not a directory "
            "(a file or a symbolic link)"
        )
    if info.st_uid != os.getuid():
        raise ClusterError(
            f"state directory {path} ({STATE_DIR_ENV}) belongs to uid {info.st_uid}, "
            f"not to this user (uid {os.getuid()})"
        )
    if info.st_mode & 0o022:
        raise ClusterError(
            f"state directory {path} ({STATE_DIR_ENV}) may be written by others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); make it 0700"
        )
    return path


@attrs.frozen
class Owner:
    """A process, for as long as the machine runs: its pid and its start time."""

    pid: int
    start_time: int

    @property
    def ledger_name(self) -> str:
        return f"worker-{self.pid}-{self.start_time}.json"


@attrs.frozen
class GroupEntry:
    """A command's process group: its id (its leader's pid), the leader's start time, the task."""

    pgid: int
    leader_start_time: int
    task_id: str


@attrs.frozen
class LedgerContent:
    owner: Owner
    host: str
    instance: str
    groups: tuple[GroupEntry, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": LEDGER_FORMAT,
                "pid": self.owner.pid,
                "start_time": self.owner.start_time,
                "host": self.host,
                "instance": self.instance,
                "groups": [attrs.asdict(group) for group in self.groups],
            }
        )


def parse_ledger(text: str) -> LedgerContent:
    """A ledger's JSON; ``ValueError`` naming what was wrong."""
    try:
        data = json.loads(text)
        if data["format"] != LEDGER_FORMAT:
            raise ValueError(f"format {data['format']!r}, expected {LEDGER_FORMAT}")
        groups = tuple(_group(item) for item in data["groups"])
        owner = Owner(_int(data["pid"]), _int(data["start_time"]))
        return LedgerContent(owner, str(data["host"]), str(data["instance"]), groups)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a ledger: {type(exc).__name__} {exc}") from None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _group(item: Any) -> GroupEntry:
    return GroupEntry(_int(item["pgid"]), _int(item["leader_start_time"]), str(item["task_id"]))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` whole: written to a temporary file, renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@attrs.define(eq=False)
class Ledger:
    """This worker's ledger: the process groups its commands run in, kept on disk.

    The executor's hook (``on_process_group``) changes it in memory; ``serve_writes``
    writes it in a thread (the rename costs ~0.3 ms on ext4, ~40 us on tmpfs), one
    write for every change made meanwhile.  So a group is on disk about a write's
    time after its command started: a worker killed within that time leaves that
    command unrecorded.
    """

    path: Path
    owner: Owner
    host: str
    instance: str
    _processes: Processes = attrs.field(repr=False)
    groups: dict[int, GroupEntry] = attrs.field(factory=dict)
    writes: int = 0
    #: Writes that failed (logged) and groups that could not be recorded.
    write_errors: int = 0
    #: Changes made, and how many of them are on disk.
    _changes: int = 0
    _written: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _wrote: trio.Event = attrs.field(factory=trio.Event, repr=False)

    def create(self) -> None:
        """Write the empty ledger; ``ClusterError`` if it cannot be."""
        try:
            write_atomically(self.path, self._content())
        except OSError as exc:
            raise ClusterError(f"cannot write the worker's ledger {self.path}: {exc}") from exc

    def on_process_group(self, task_id: str, pgid: int, started: bool) -> None:
        """The executor's ``on_process_group``: record a group as it starts, drop it at its end."""
        if started:
            try:
                leader = self._processes.stat(pgid)
            except (OSError, ValueError) as exc:
                leader = None
                log.error("cannot read a command's start time", pgid=pgid, error=str(exc))
            if leader is None:  # (not waited for yet, it cannot have gone: a zombie at least)
                self.write_errors += 1
                log.error("a command's group not in the ledger", task_id=task_id, pgid=pgid)
                return
            self.groups[pgid] = GroupEntry(pgid, leader.start_time, task_id)
        elif self.groups.pop(pgid, None) is None:
            return
        self._changes += 1
        self._changed.set()

    async def serve_writes(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the ledger after each change (retrying, with a capped back-off, a
        write that failed)."""
        task_status.started()
        delay = RETRY_FIRST
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            changes = self._changes
            try:
                await trio.to_thread.run_sync(write_atomically, self.path, self._content())
            except OSError as exc:
                self._failed(exc)
                self._changed.set()
                await trio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX)
                continue
            delay = RETRY_FIRST
            self.writes += 1
            self._written = changes
            self._wrote.set()
            self._wrote = trio.Event()

    async def wait_written(self) -> None:
        """Return once every change made so far is on disk."""
        while self._written < self._changes:
            await self._wrote.wait()

    def close(self) -> None:
        """The worker stops (``serve_writes`` has): remove the ledger, unless groups
        outlived their commands (then it stays for the next worker's sweep)."""
        if self.groups:
            if self._written < self._changes:
                with contextlib.suppress(OSError):
                    write_atomically(self.path, self._content())
            log.warning(
                "process groups left at exit: the ledger stays for the next worker to reap",
                ledger=str(self.path),
                groups=sorted(self.groups),
            )
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("cannot remove the worker's ledger", ledger=str(self.path), error=str(exc))

    def _content(self) -> str:
        groups = tuple(self.groups.values())
        return LedgerContent(self.owner, self.host, self.instance, groups).to_json()

    def _failed(self, exc: OSError) -> None:
        self.write_errors += 1
        log.error(
            "the worker's ledger was not written: a kill -9 now could leave commands running",
            ledger=str(self.path),
            error=str(exc),
            write_errors=self.write_errors,
        )
