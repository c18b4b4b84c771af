"""Subprocess tasks: run a command in its own process group, read usage, never orphan.

The command starts a new session (``start_new_session=True``), so its process
group id is its pid and every descendant that does not start its own session
shares it.  On cancel or timeout the whole group gets SIGTERM (and SIGCONT, in
case it was suspended), then SIGKILL after ``kill_grace``; the same happens to
processes still left in the group after the command itself exits.  What a cut
command wrote is still read (its usage is spending), and a command that had
exited by itself when the cut was noticed ends by its exit code: a timeout is
only ever a command still running at the deadline check.
"""

from __future__ import annotations

import os
import signal
import subprocess

import structlog
import trio

from ._exceptions import CommandFailedError, CommandStartError
from ._lines import DEFAULT_MAX_LINE, LineSplitter
from ._pipes import CommandOutput
from ._reaping import (
    group_alive,
    pipe_holders,
    pipes_have_writers,
    signal_each,
    terminate_group,
    wait_for_end_of_output,
)
from ._spec import CommandSpec
from ._stdout import StdoutReader
from ._task import CommandTask

log = structlog.get_logger("runcast.executor")

# Output-only streams need no more than what a task_output line can show.
_STDERR_MAX_LINE = 64 * 1024
# Seconds, beyond the kill grace, that stopping a cut command may take at most
# (a process stuck in the kernel ignores even SIGKILL).
_STOP_BOUND = 10


async def run_command(
    ctx: CommandTask, spec: CommandSpec, *, kill_grace: float, max_line: int = DEFAULT_MAX_LINE
) -> int:
    """Run ``spec`` to its end; returns 0 or raises ``CommandFailedError``.

    Cut short (its timeout, a cancel, the executor stopping), the command's
    group is stopped and what it wrote is still read and counted.  A command
    found to have exited by itself when the cut is noticed (the event loop was
    held past its deadline: a stall, SIGSTOP) ends as it ended, by its exit
    code, not as cut.
    """
    process = await _open(spec)
    pgid = process.pid
    output = _output_of(process, ctx, max_line)
    try:
        # In the try: whatever it raises, the group is stopped in ``finally``.
        ctx.add_process_group(pgid)
        await _wait_for_end(process, pgid, output, ctx.task_id, kill_grace)
    except BaseException as cut:
        if not _is_cancellation(cut):
            raise
        if not await _stop_and_drain(process, pgid, output, kill_grace):
            raise
        # It had exited by itself: its end, not the cut, is the outcome.  Trio's
        # cancellation is a state, not an event: whoever cancelled still gets
        # ``Cancelled`` at its next checkpoint (a worker's cut scope is replaced).
        log.info("exited_before_cut", task_id=ctx.task_id, exit_code=process.returncode)
    finally:
        await _close(process, pgid, output, kill_grace)
        output.log_cut_lines(ctx.task_id)
        ctx.remove_process_group(pgid)
        ctx.set_exit_code(process.returncode)
    code = process.returncode
    assert code is not None
    if code != 0:
        raise CommandFailedError(code)
    return code


async def _open(spec: CommandSpec) -> trio.Process:
    env = {**os.environ, **spec.env} if spec.env else None
    try:
        return await trio.lowlevel.open_process(
            spec.command if isinstance(spec.command, str) else list(spec.command),
            shell=spec.shell,
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise CommandStartError(f"cannot start {spec.display_name!r}: {exc}") from exc


def _output_of(process: trio.Process, ctx: CommandTask, max_line: int) -> CommandOutput:
    """The command's pipes, their lines going to a stdout reader for ``ctx``."""
    assert process.stdout is not None
    assert process.stderr is not None
    reader = StdoutReader(ctx)
    return CommandOutput(
        process.stdout,
        process.stderr,
        reader.on_stdout,
        reader.on_stderr,
        LineSplitter(max_line),
        LineSplitter(_STDERR_MAX_LINE),
    )


async def _wait_for_end(
    process: trio.Process, pgid: int, output: CommandOutput, task_id: str, kill_grace: float
) -> None:
    """Read the pipes until the command has exited and they reached their end."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(output.pump)
        await process.wait()
        if group_alive(pgid):
            # Leftovers would hold the pipes open and outlive the task.
            log.warning("leftover_processes", task_id=task_id, pgid=pgid)
            await terminate_group(process, pgid, kill_grace)
        if not await wait_for_end_of_output(output.inodes, task_id, kill_grace, output.ended):
            log.warning("output_abandoned", task_id=task_id)
            nursery.cancel_scope.cancel()


async def _close(
    process: trio.Process, pgid: int, output: CommandOutput, kill_grace: float
) -> None:
    """However the command ended: no process of it left, its pipes closed.

    Bounded even if a process is stuck in the kernel and ignores SIGKILL.
    """
    with trio.CancelScope(shield=True), trio.move_on_after(kill_grace + _STOP_BOUND):
        await terminate_group(process, pgid, kill_grace)
        # Cancelled, or reading given up: leave no process that escaped the group.
        if not output.ended.is_set() and pipes_have_writers(output.stdout, output.stderr):
            escaped = await trio.to_thread.run_sync(pipe_holders, output.inodes)
            signal_each(escaped, signal.SIGKILL)
        await output.stdout.aclose()
        await output.stderr.aclose()


def _is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is trio's ``Cancelled`` and nothing else (alone or grouped by nurseries)."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


async def _stop_and_drain(
    process: trio.Process, pgid: int, output: CommandOutput, kill_grace: float
) -> bool:
    """After a cut: stop the group, read what the pipes hold; whether the command
    had exited by itself before.

    A cut may be noticed late: after SIGSTOP/SIGCONT the I/O wait returns no
    events (EINTR) and trio expires the deadline before it has seen the
    command's output or exit, which may have come long before.
    """
    exited = process.returncode is not None  # a non-blocking waitpid, before any signal
    with trio.CancelScope(shield=True), trio.move_on_after(kill_grace + _STOP_BOUND):
        # A group stopped first has written all it will (its SIGTERM handler too).
        await terminate_group(process, pgid, kill_grace)
        await output.drain()
    return exited
