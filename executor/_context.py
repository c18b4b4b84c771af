"""What a running task sees: its id, a way to record usage, and the pause point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import structlog
import trio

from events import (
    MAX_NAME,
    MAX_RECORD_COST_USD,
    MAX_RECORD_TOKENS,
    OutputStream,
    TaskUsage,
    truncate,
)

from ._exceptions import ExecutorError, InvalidArgumentError
from ._host import TaskHost
from ._record import TaskRecord
from ._spending import Spending
from .process import OutputLine, pack_output
from .usage import NO_TOKENS, TokenCounts, sum_tokens

log = structlog.get_logger("runcast.executor")

#: Warnings one attempt logs at most; the rest are counted (``Executor.usage_records_refused``,
#: ``Executor.names_cut``) and summed up in one warning when the attempt ends.
MAX_WARNINGS_PER_ATTEMPT = 10


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise InvalidArgumentError(f"{name} must be >= 0, got {value}")
    if value > MAX_RECORD_TOKENS:
        raise InvalidArgumentError(f"{name} must be <= {MAX_RECORD_TOKENS:,}, got {value}")
    return value


def _checked_totals(tokens: TokenCounts) -> TokenCounts:
    for kind in ("input", "output", "cache_read", "cache_write"):
        _count(f"totals.{kind}", getattr(tokens, kind))
    return tokens


def _reported_cost(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"cost_usd must be a number or None, got {value!r}")
    if not 0 <= value <= MAX_RECORD_COST_USD:  # NaN and inf fail it; ints compare exactly
        bound = f"0..{MAX_RECORD_COST_USD:,.0f}"
        raise InvalidArgumentError(f"cost_usd must be a finite number in {bound}, got {value}")
    return value


@attrs.define(eq=False)
class TaskContext:
    """Passed as the first argument of every task function, for one attempt.

    It reaches the executor through its ``TaskHost`` (``_host``) and prices
    usage through the executor's ``Spending``; a command task's process code
    sees it as a ``process.CommandTask``.
    """

    _host: TaskHost
    _spending: Spending
    _record: TaskRecord
    attempt: int
    _ended: bool = False
    # Usage recorded since the last provider total (Claude Code's ``result``),
    # by model (the task's model for ""): a total replaces these provisional
    # counts instead of adding to them.
    _provisional: dict[str, tuple[TokenCounts, float]] = attrs.field(factory=dict)
    #: Readers of this attempt that saw JSON looking like usage in no known format.
    usage_lines_unrecognised: int = 0
    # Warnings of this attempt: logged up to MAX_WARNINGS_PER_ATTEMPT, all counted.
    _warnings: int = 0

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
        source: str = "",
    ) -> TaskUsage:
        """Add one usage increment; publishes ``task_usage`` with its cost filled in.

        Counts are ints in ``0..MAX_RECORD_TOKENS``, ``cost_usd`` (a cost the
        provider reported) a number in ``0..MAX_RECORD_COST_USD``; else
        ``InvalidArgumentError``.  A ``model`` or ``provider`` longer than
        ``MAX_NAME`` is cut to it, with a warning.  ``source``: the output format
        it was read from (``events.USAGE_FORMATS``), "" for none.
        """
        tokens = TokenCounts(
            _count("input_tokens", input_tokens),
            _count("output_tokens", output_tokens),
            _count("cache_read_tokens", cache_read_tokens),
            _count("cache_write_tokens", cache_write_tokens),
        )
        event = self._record_tokens(model, provider, tokens, _reported_cost(cost_usd), source)
        self._add_provisional(model, tokens, event.cost_usd)
        return event

    def record_usage_batch(
        self,
        *,
        model: str,
        provider: str | None = None,
        records: Sequence[TokenCounts],
        source: str = "",
    ) -> TaskUsage | None:
        """Several usage records of one model as ONE ``task_usage`` (None if none).

        Each record is priced on its own (price tiers apply per request); the
        event carries the summed tokens and cost, and ``records=len(records)``.
        A subprocess's stdout reader uses it for the records of one read.
        """
        if not records:
            return None
        tokens = sum_tokens(records)
        event = self._record_tokens(model, provider, tokens, None, source, parts=records)
        self._add_provisional(model, tokens, event.cost_usd)
        return event

    def _add_provisional(self, model: str, tokens: TokenCounts, cost_usd: float | None) -> None:
        key = model or self._record.model
        counted, cost = self._provisional.get(key, (NO_TOKENS, 0.0))
        self._provisional[key] = (counted + tokens, cost + (cost_usd or 0.0))

    def replace_provisional_usage(
        self,
        *,
        model: str,
        provider: str | None = None,
        totals: TokenCounts,
        cost_usd: float | None = None,
        source: str = "",
    ) -> TaskUsage | None:
        """Apply a provider's totals for everything since the last totals.

        Only the difference is recorded, so the total is never added on top of
        the provisional per-turn usage: the tokens' over what ``model`` counted
        since, the cost's (which covers every model) over what all counted.
        Counts only grow: a kind whose total is below its provisional sum is
        left as counted.
        """
        _checked_totals(totals)
        cost_usd = _reported_cost(cost_usd)
        provisional, self._provisional = self._provisional, {}
        counted, _ = provisional.get(model or self._record.model, (NO_TOKENS, 0.0))
        delta = totals.minus_clamped(counted)
        delta_cost = None
        if cost_usd is not None:
            delta_cost = max(0.0, cost_usd - sum(cost for _, cost in provisional.values()))
        if delta.total == 0 and not delta_cost:
            return None
        return self._record_tokens(model, provider, delta, delta_cost, source)

    def replace_provisional_by_model(
        self, totals: Mapping[str, tuple[TokenCounts, float | None]], *, source: str = ""
    ) -> list[TaskUsage]:
        """Apply a provider's totals per model (Claude Code's ``modelUsage``).

        For each model, what it counted since the last totals is replaced by
        its total: only the difference is recorded, with the reported cost's
        difference as its cost (source ``reported``), so the model's tokens and
        cost add up to the totals.  Usage of a model the totals do not name
        stays as counted.  Counts only grow, as in ``replace_provisional_usage``.
        """
        checked = [
            (model, _checked_totals(tokens), _reported_cost(cost))
            for model, (tokens, cost) in totals.items()
        ]
        provisional, self._provisional = self._provisional, {}
        events = []
        for model, tokens, cost_usd in checked:
            counted, counted_cost = provisional.get(model or self._record.model, (NO_TOKENS, 0.0))
            delta = tokens.minus_clamped(counted)
            delta_cost = None if cost_usd is None else max(0.0, cost_usd - counted_cost)
            if delta.total or delta_cost:
                events.append(self._record_tokens(model, None, delta, delta_cost, source))
        return events

    def _record_tokens(
        self,
        model: str,
        provider: str | None,
        tokens: TokenCounts,
        cost_usd: float | None,
        source: str,
        parts: Sequence[TokenCounts] = (),
    ) -> TaskUsage:
        if self._ended:
            raise ExecutorError(f"task {self.task_id!r}: usage recorded after the attempt ended")
        if not isinstance(model, str):
            raise InvalidArgumentError(f"model must be a string, got {model!r}")
        if provider is not None and not isinstance(provider, str):
            raise InvalidArgumentError(f"provider must be a string or None, got {provider!r}")
        if len(model) > MAX_NAME:
            model = self._cut_name("model", model)
        if provider is not None and len(provider) > MAX_NAME:
            provider = self._cut_name("provider", provider)
        if not isinstance(source, str) or len(source) > MAX_NAME:
            raise InvalidArgumentError(
                f"source must be a string of at most {MAX_NAME} characters, got {source!r:.80}"
            )
        return self._spending.record_usage(
            self._record, model, provider, tokens, cost_usd, parts, source=source
        )

    def _cut_name(self, field: str, name: str) -> str:
        """``name`` cut to ``MAX_NAME`` (marked): a name the task reported, too long to keep."""
        self._host.names_cut += 1
        self._warn("usage_name_cut", field=field, length=len(name), kept=MAX_NAME)
        return truncate(name, MAX_NAME)

    def refuse_usage(self, reason: str) -> None:
        """Say that a usage record was refused (``reason``); its line stays output.

        The stdout reader calls it for a record with a number out of range:
        nothing of it is counted, the task goes on.
        """
        self._host.usage_records_refused += 1
        self._warn("usage_record_refused", reason=truncate(reason, 200))

    def unrecognised_usage(self, what: str) -> None:
        """Say that stdout carried JSON that looked like usage in no known format.

        A stdout reader calls it once, for its first such line (its parser
        counts them all, ``UsageParser.lines_unrecognised``): the lines stay
        output, and ``usage_lines_unrecognised`` counts the calls.
        """
        self.usage_lines_unrecognised += 1
        self._warn("usage_format_unrecognised", what=truncate(what, 200))

    def _warn(self, event: str, **fields: Any) -> None:
        self._warnings += 1
        if self._warnings <= MAX_WARNINGS_PER_ATTEMPT:
            if self._warnings == MAX_WARNINGS_PER_ATTEMPT:
                fields["note"] = "further warnings of this attempt are counted, not logged"
            log.warning(event, task_id=self.task_id, attempt=self.attempt, **fields)

    def end_attempt(self) -> None:
        """The attempt is over (the executor says so): no more usage is accepted,
        and how many warnings went unlogged is logged."""
        self._ended = True
        unlogged = self._warnings - MAX_WARNINGS_PER_ATTEMPT
        if unlogged > 0:
            log.warning(
                "warnings_not_logged", task_id=self.task_id, attempt=self.attempt, count=unlogged
            )

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
        self._host.output_lines_truncated += cut
        publish = self._host.publish
        for event in events:
            publish(event)

    async def wait_if_paused(self) -> None:
        """Return at once unless the executor is paused; then wait for resume."""
        await trio.lowlevel.checkpoint()
        while self._host.is_paused:
            await self._host.wait_unpaused()

    def add_process_group(self, pgid: int) -> None:
        """Tell the executor about a process group to stop/continue on pause/resume."""
        self._host.add_process_group(self._record, pgid)

    def remove_process_group(self, pgid: int) -> None:
        """The group is gone: pause and resume no longer signal it."""
        self._host.remove_process_group(self._record, pgid)

    def set_exit_code(self, code: int | None) -> None:
        """The task's exit status (a command's), shown in its end event and snapshot."""
        self._record.exit_code = code
