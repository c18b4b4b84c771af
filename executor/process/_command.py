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

import math
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

import attrs
import structlog
import trio

from events import MAX_OUTPUT_LINE

from ._context import TaskContext
from ._cost import TokenCounts
from ._exceptions import ExecutorError, InvalidArgumentError
from ._lines import DEFAULT_MAX_LINE, Line, LineSplitter
from ._output import OutputLine
from ._pipes import CommandOutput
from ._reaping import (
    group_alive,
    pipe_holders,
    pipes_have_writers,
    signal_each,
    wait_for_end_of_output,
)
from ._reaping import signal_group as signal_group
from ._reaping import terminate_group as terminate_group
from ._usage import UsageParser, UsageRecord, typed_turn

log = structlog.get_logger("runcast.executor")

# Output-only streams need no more than what a task_output line can show.
_STDERR_MAX_LINE = 64 * 1024
# Seconds, beyond the kill grace, that stopping a cut command may take at most
# (a process stuck in the kernel ignores even SIGKILL).
_STOP_BOUND = 10


class CommandFailedError(ExecutorError):
    """The command exited with a non-zero status (or was killed by a signal)."""

    def __init__(self, exit_code: int) -> None:
        if exit_code < 0:
            try:
                what = f"killed by signal {signal.Signals(-exit_code).name}"
            except ValueError:
                what = f"killed by signal {-exit_code}"
        else:
            what = f"exit code {exit_code}"
        super().__init__(what)
        self.exit_code = exit_code


class CommandStartError(ExecutorError):
    """The command could not be started (missing program, bad cwd, ...)."""


def _check_command(spec: CommandSpec, _attribute: object, value: Any) -> None:
    if isinstance(value, str):
        if not spec.shell:
            raise InvalidArgumentError(
                "command: a string is run by the shell only with shell = true; "
                "otherwise give a list of arguments"
            )
        if not value.strip():
            raise InvalidArgumentError("command: must not be empty")
        return
    if not isinstance(value, tuple) or not value:
        raise InvalidArgumentError("command: expected a non-empty list of strings")
    if not all(isinstance(arg, str) for arg in value) or not value[0]:
        raise InvalidArgumentError("command: every argument must be a string, the first non-empty")


def _to_command(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check_optional_text(_spec: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(f"{attribute.name}: expected a non-empty string, got {value!r}")


def _check_id(_spec: object, _attribute: object, value: Any) -> None:
    if value == "*":
        raise InvalidArgumentError("id: '*' is reserved for session events")
    if value is not None and len(value) > 256:
        raise InvalidArgumentError("id: must be at most 256 characters")


def _check_env(_spec: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and key and "=" not in key and isinstance(item, str)
        for key, item in value.items()
    ):
        raise InvalidArgumentError('env: expected a table of NAME = "string" values')


def _check_timeout(_spec: object, _attribute: object, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"timeout: expected seconds as a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"timeout: must be > 0 seconds, got {value}")


def _check_int(minimum: int | None) -> Any:
    def check(_spec: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentError(f"{attribute.name}: expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise InvalidArgumentError(f"{attribute.name}: must be >= {minimum}, got {value}")

    return check


def _check_bool(_spec: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{attribute.name}: expected true or false, got {value!r}")


@attrs.frozen(kw_only=True)
class CommandSpec:
    """One job-file task: a command, and how to run and account for it."""

    shell: bool = attrs.field(default=False, validator=_check_bool)
    command: tuple[str, ...] | str = attrs.field(converter=_to_command, validator=_check_command)
    id: str | None = attrs.field(default=None, validator=[_check_optional_text, _check_id])
    name: str | None = attrs.field(default=None, validator=_check_optional_text)
    cwd: str | None = attrs.field(default=None, validator=_check_optional_text)
    env: Mapping[str, str] = attrs.field(factory=dict, validator=_check_env)
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    retries: int = attrs.field(default=0, validator=_check_int(0))
    priority: int = attrs.field(default=0, validator=_check_int(None))
    model: str | None = attrs.field(default=None, validator=_check_optional_text)
    provider: str | None = attrs.field(default=None, validator=_check_optional_text)

    @property
    def display_name(self) -> str:
        if self.name is not None:
            return self.name
        if isinstance(self.command, str):
            return self.command
        return " ".join(self.command)


# Bytes of an output line decoded at most: a task_output line shows at most
# MAX_OUTPUT_LINE characters (of up to 4 bytes each).
_OUTPUT_BYTES = 4 * MAX_OUTPUT_LINE


def _output_line(raw: bytes, truncated: bool) -> OutputLine:
    if len(raw) > _OUTPUT_BYTES:
        raw, truncated = raw[:_OUTPUT_BYTES], True
    return raw.decode("utf-8", "replace").rstrip("\r"), truncated


@attrs.define
class _StdoutReader:
    """Turns stdout lines into usage records or output.

    All lines of one batch (one read) are parsed first; the output lines go
    out together (``task_output`` with ``lines`` = how many, as few events as
    fit ``MAX_OUTPUT_TEXT``), then the usage records with the same model and
    provider and no reported cost as ONE ``task_usage`` (``records`` = how
    many, each priced on its own); a provider's totals first settle what came
    before them.

    A line goes to the parser only if it may hold usage.  Every recognised
    shape has a ``"usage"`` key; its letters could be escaped, but only as
    ``\\u0075``, ``\\u0073``, ``\\u0061``, ``\\u0067``, ``\\u0065``: a line with
    neither the key nor such an escape is output (tool output's ``\\u001b``
    colour codes do not count).
    """

    ctx: TaskContext
    parser: UsageParser = attrs.field(factory=UsageParser)
    # Cleared, never replaced: ``on_stdout`` holds them in locals.
    _pending: dict[tuple[str, str | None], list[TokenCounts]] = attrs.field(factory=dict)
    _output: list[OutputLine] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        # A record with a number out of range stays output, and the task says so once.
        self.parser.on_refused = lambda reason: self.ctx.refuse_usage(reason)

    def on_stdout(self, lines: list[Line]) -> None:
        # This loop is the reader's whole cost (a Claude Code turn is three
        # lines, two of them usage): keep its per-line work small.
        output = self._output
        pending = self._pending
        parser = self.parser
        typed = parser.typed_decode
        # ``raw.find(x) >= 0``, not ``x in raw``: CPython's ``bytes.__contains__``
        # first tries ``x`` as an int and formats, raises and clears a TypeError
        # (with five tests a turn: 3.5k more instructions per usage record).
        for raw, truncated in lines:
            if not truncated:
                find = raw.find
                turn = typed_turn(raw) if typed and find(b'"assistant"') >= 0 else None
                if turn is not None:
                    # A turn msgspec reads has a "usage" key: no need to look for one.
                    counted = parser.count_turn(turn)
                    if counted is not None:
                        model, tokens = counted
                        pending.setdefault((model or "", None), []).append(tokens)
                    continue
                if find(b'"usage"') >= 0 or (
                    find(b"\\u00") >= 0 and (find(b"\\u006") >= 0 or find(b"\\u007") >= 0)
                ):
                    # What parse does once the typed decode has said no.
                    records = parser.parse_json(raw)
                    if records is not None:
                        self._add(records)
                        continue
            if len(raw) > _OUTPUT_BYTES:
                raw, truncated = raw[:_OUTPUT_BYTES], True
            output.append((raw.decode("utf-8", "replace").rstrip("\r"), truncated))
        self._flush()

    def on_stderr(self, lines: list[Line]) -> None:
        output = [_output_line(raw, truncated) for raw, truncated in lines]
        self.ctx.output_lines(output, stream="stderr")

    def _add(self, records: list[UsageRecord]) -> None:
        for record in records:
            if record.replaces_provisional or record.cost_usd is not None:
                self._add_reported(record)
            else:
                key = (record.model or "", record.provider)
                self._pending.setdefault(key, []).append(record.tokens)

    def _add_reported(self, record: UsageRecord) -> None:
        if record.replaces_provisional:
            self._flush()  # the totals replace what came before them: count that first
            self.ctx.replace_provisional_usage(
                model=record.model or "",
                provider=record.provider,
                totals=record.tokens,
                cost_usd=record.cost_usd,
            )
        else:
            self.ctx.record_usage(
                model=record.model or "",
                provider=record.provider,
                input_tokens=record.tokens.input,
                output_tokens=record.tokens.output,
                cache_read_tokens=record.tokens.cache_read,
                cache_write_tokens=record.tokens.cache_write,
                cost_usd=record.cost_usd,
            )

    def _flush(self) -> None:
        if self._output:
            output = self._output[:]
            self._output.clear()
            self.ctx.output_lines(output, stream="stdout")
        if self._pending:
            pending = list(self._pending.items())
            self._pending.clear()
            for (model, provider), parts in pending:
                self.ctx.record_usage_batch(model=model, provider=provider, records=parts)


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


async def run_command(
    ctx: TaskContext, spec: CommandSpec, *, kill_grace: float, max_line: int = DEFAULT_MAX_LINE
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
    ctx.add_process_group(pgid)
    assert process.stdout is not None
    assert process.stderr is not None
    reader = _StdoutReader(ctx)
    output = CommandOutput(
        process.stdout,
        process.stderr,
        reader.on_stdout,
        reader.on_stderr,
        LineSplitter(max_line),
        LineSplitter(_STDERR_MAX_LINE),
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output.pump)
            await process.wait()
            if group_alive(pgid):
                # Leftovers would hold the pipes open and outlive the task.
                log.warning("leftover_processes", task_id=ctx.task_id, pgid=pgid)
                await terminate_group(process, pgid, kill_grace)
            if not await wait_for_end_of_output(
                output.inodes, ctx.task_id, kill_grace, output.ended
            ):
                log.warning("output_abandoned", task_id=ctx.task_id)
                nursery.cancel_scope.cancel()
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
        # Bounded even if a process is stuck in the kernel and ignores SIGKILL.
        with trio.CancelScope(shield=True), trio.move_on_after(kill_grace + _STOP_BOUND):
            await terminate_group(process, pgid, kill_grace)
            # Cancelled, or reading given up: leave no process that escaped the group.
            if not output.ended.is_set() and pipes_have_writers(process.stdout, process.stderr):
                escaped = await trio.to_thread.run_sync(pipe_holders, output.inodes)
                signal_each(escaped, signal.SIGKILL)
            await process.stdout.aclose()
            await process.stderr.aclose()
        output.log_cut_lines(ctx.task_id)
        ctx.remove_process_group(pgid)
        ctx.set_exit_code(process.returncode)
    code = process.returncode
    assert code is not None
    if code != 0:
        raise CommandFailedError(code)
    return code


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
