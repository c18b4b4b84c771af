"""What a running task sees: its id, a way to record usage, and the pause point."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from events import OutputStream, TaskUsage

from ._cost import TokenCounts, sum_tokens
from ._exceptions import ExecutorError, InvalidArgumentError
from ._output import OutputLine, pack_output
from ._task import NO_TOKENS, TaskRecord

if TYPE_CHECKING:
    from ._executor import Executor


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise InvalidArgumentError(f"{name} must be >= 0, got {value}")
    return value


@attrs.define(eq=False)
class TaskContext:
    """Passed as the first argument of every task function, for one attempt."""

    _executor: Executor
    _record: TaskRecord
    attempt: int
    _ended: bool = False
    # Usage recorded since the last provider total (Claude Code's ``result``):
    # a total replaces these provisional counts instead of adding to them.
    _provisional_tokens: TokenCounts = NO_TOKENS
    _provisional_cost: float = 0.0

    @property
    def task_id(self) -> str:
        return self._record.task_id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def model(self) -> str:
        """The task's default model ("" when none was given)."""
        return self._record.model

    @property
    def provider(self) -> str | None:
        return self._record.provider

    def record_usage(
        self,
        *,
        model: str,
        provider: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cost_usd: float | None = None,
    ) -> TaskUsage:
        """Add one usage increment; publishes ``task_usage`` with its cost filled in."""
        tokens = TokenCounts(
            _count("input_tokens", input_tokens),
            _count("output_tokens", output_tokens),
            _count("cache_read_tokens", cache_read_tokens),
            _count("cache_write_tokens", cache_write_tokens),
        )
        event = self._record_tokens(model, provider, tokens, cost_usd)
        self._provisional_tokens += tokens
        self._provisional_cost += event.cost_usd or 0.0
        return event

    def record_usage_batch(
        self, *, model: str, provider: str | None = None, records: Sequence[TokenCounts]
    ) -> TaskUsage | None:
        """Several usage records of one model as ONE ``task_usage`` (None if none).

        Each record is priced on its own (price tiers apply per request); the
        event carries the summed tokens and cost, and ``records=len(records)``.
        A subprocess's stdout reader uses it for the records of one read.
        """
        if not records:
            return None
        tokens = sum_tokens(records)
        event = self._record_tokens(model, provider, tokens, None, parts=records)
        self._provisional_tokens += tokens
        self._provisional_cost += event.cost_usd or 0.0
        return event

    def replace_provisional_usage(
        self,
        *,
        model: str,
        provider: str | None = None,
        totals: TokenCounts,
        cost_usd: float | None = None,
    ) -> TaskUsage | None:
        """Apply a provider's totals for everything since the last totals.

        Only the difference is recorded, so the total is never added on top of
        the provisional per-turn usage.  Counts only grow: a kind whose total is
        below its provisional sum is left as counted.
        """
        delta = totals.minus_clamped(self._provisional_tokens)
        delta_cost = None
        if cost_usd is not None:
            delta_cost = max(0.0, cost_usd - self._provisional_cost)
        self._provisional_tokens = NO_TOKENS
        self._provisional_cost = 0.0
        if delta.total == 0 and not delta_cost:
            return None
        return self._record_tokens(model, provider, delta, delta_cost)

    def _record_tokens(
        self,
        model: str,
        provider: str | None,
        tokens: TokenCounts,
        cost_usd: float | None,
        parts: Sequence[TokenCounts] = (),
    ) -> TaskUsage:
        if self._ended:
            raise ExecutorError(f"task {self.task_id!r}: usage recorded after the attempt ended")
        if not isinstance(model, str):
            raise InvalidArgumentError(f"model must be a string, got {model!r}")
        return self._executor._record_usage(self._record, model, provider, tokens, cost_usd, parts)

    def output(
        self, line: str, *, stream: OutputStream = "stdout", truncated: bool = False
    ) -> None:
        """Publish ``line`` (its lines, if it has several) as ``task_output``.

        Each line is cut to ``MAX_OUTPUT_LINE`` characters; ``truncated`` says
        they were cut already.
        """
        self.output_lines([(text, truncated) for text in line.split("\n")], stream=stream)

    def output_lines(self, lines: Iterable[OutputLine], *, stream: OutputStream = "stdout") -> None:
        """Publish ``(text, was_cut)`` lines in as few ``task_output`` events as fit.

        A subprocess's stdout reader gives the output lines of one read at once.
        """
        events, cut = pack_output(self.task_id, stream, lines)
        self._executor.output_lines_truncated += cut
        publish = self._executor._publish
        for event in events:
            publish(event)

    async def wait_if_paused(self) -> None:
        """Return at once unless the executor is paused; then wait for resume."""
        await trio.lowlevel.checkpoint()
        while self._executor.is_paused:
            await self._executor._wait_unpaused()

    def add_process_group(self, pgid: int) -> None:
        """Tell the executor about a process group to stop/continue on pause/resume."""
        self._executor._add_process_group(self._record, pgid)

    def remove_process_group(self, pgid: int) -> None:
        groups = self._record.process_groups
        if groups is not None:
            groups.discard(pgid)

    def set_exit_code(self, code: int | None) -> None:
        self._record.exit_code = code
