"""Stopping a task's processes: its process group, and whatever escaped it.

The command runs in its own session, so its process group id is its pid and
every descendant that does not start its own session shares it.  A daemon's
double fork (``setsid``) leaves the group; if it still holds the task's
stdout or stderr it is found by that pipe (``/proc/*/fd``) and stopped too,
so a task never waits for an orphan's end of file.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import structlog
import trio

log = structlog.get_logger("runcast.executor")

_GROUP_POLL_SECONDS = 0.05
_KILL_CONFIRM_SECONDS = 2.0
# After the group is gone, how long the pipes may stay open before whoever
# holds them (a process that left the group) is looked for and stopped.
_EOF_GRACE_SECONDS = 1.0


def signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pgid, signum)


def signal_group_logged(pgid: int, signum: signal.Signals) -> None:
    """``signal_group``, logging (not raising) a group whose owner changed (setuid child)."""
    try:
        signal_group(pgid, signum)
    except PermissionError as exc:
        log.warning("signal_failed", pgid=pgid, signal=signum.name, error=str(exc))


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is still in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    # Zombies also answer signal 0; they are dead, just not yet reaped by init.
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


async def terminate_group(process: trio.Process, pgid: int, grace: float) -> None:
    """SIGTERM the group, SIGKILL what is left after ``grace`` seconds, reap the leader."""
    if process.returncode is not None and not group_alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    signal_group(pgid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    with trio.move_on_after(grace):
        await process.wait()
        # Nothing signals "the group is empty" (its other members are not our
        # children), so it is polled, briefly, within the grace period.
        while group_alive(pgid):  # noqa: ASYNC110
            await trio.sleep(_GROUP_POLL_SECONDS)
    signal_group(pgid, signal.SIGKILL)
    await process.wait()
    # SIGKILL is delivered asynchronously; confirm the rest of the group is gone.
    with trio.move_on_after(_KILL_CONFIRM_SECONDS):
        while group_alive(pgid):  # noqa: ASYNC110
            await trio.sleep(_GROUP_POLL_SECONDS / 5)


def pipe_holders(inodes: frozenset[int]) -> list[int]:
    """Pids, other than ours, holding any of these pipes: processes that left the group.

    A daemon's double fork (``setsid``) leaves the process group, so signals to
    the group miss it, but it still holds the task's stdout open.
    """
    me = os.getpid()
    wanted = {f"pipe:[{inode}]" for inode in inodes}
    holders: list[int] = []
    try:
        processes = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:  # no /proc: nothing to find
        return holders
    for pid in processes:
        if int(pid) == me:
            continue
        try:
            with os.scandir(f"/proc/{pid}/fd") as fds:
                if any(_readlink(fd.path) in wanted for fd in fds):
                    holders.append(int(pid))
        except OSError:  # gone, or not ours to look at
            continue
    return holders


def pipe_inodes(*streams: trio.abc.ReceiveStream) -> list[int]:
    return [
        os.fstat(stream.fileno()).st_ino
        for stream in streams
        if isinstance(stream, trio.lowlevel.FdStream)
    ]


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def signal_each(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def stop_escaped(
    inodes: frozenset[int], task_id: str, grace: float, output_ended: trio.Event
) -> None:
    """SIGTERM whoever outside the group still holds the pipes, SIGKILL after ``grace``."""
    holders = await trio.to_thread.run_sync(pipe_holders, inodes)
    if not holders:
        return
    log.warning("escaped_processes", task_id=task_id, pids=holders)
    signal_each(holders, signal.SIGTERM)
    signal_each(holders, signal.SIGCONT)
    with trio.move_on_after(grace):
        await output_ended.wait()
    if not output_ended.is_set():
        signal_each(await trio.to_thread.run_sync(pipe_holders, inodes), signal.SIGKILL)


async def wait_for_end_of_output(
    inodes: frozenset[int], task_id: str, grace: float, ended: trio.Event
) -> bool:
    """After the group is gone: whether both pipes reached their end.

    Data still in the pipes is read to the end however long that takes; only a
    process that escaped the group and keeps them open is stopped (and if even
    SIGKILL does not close them, reading is given up: the task must not hang).
    """
    with trio.move_on_after(_EOF_GRACE_SECONDS):
        await ended.wait()
        return True
    await stop_escaped(inodes, task_id, grace, ended)
    if await trio.to_thread.run_sync(pipe_holders, inodes):
        with trio.move_on_after(_KILL_CONFIRM_SECONDS):
            await ended.wait()
    else:
        await ended.wait()  # no writer left: the end is coming
    return ended.is_set()


def pipes_have_writers(*streams: trio.abc.ReceiveStream) -> bool:
    """Whether a process may still hold the write end of these pipes.

    A cheap check before looking through ``/proc``: once nobody holds the write
    end, reading gives end of file.  What is left unread is read and dropped
    (up to 1 MiB a pipe: the task is ending and its pumps are gone).
    """
    for stream in streams:
        if not isinstance(stream, trio.lowlevel.FdStream):
            return True
        try:
            for _ in range(16):
                if not os.read(stream.fileno(), 64 * 1024):
                    break  # end of file: no writer left
            else:
                return True
        except BlockingIOError:  # open, nothing to read now: a writer holds it
            return True
        except OSError:
            continue
    return False
