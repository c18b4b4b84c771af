"""A command's stdout and stderr lines, turned into usage records and output.

Which lines are usage is the parser's business (``executor.usage``); this
module batches what one read yields, so a read costs few events: its output
lines in as few ``task_output`` events as fit, its usage records of one model
in one ``task_usage``.
"""

from __future__ import annotations

import attrs

from events import MAX_OUTPUT_LINE

from ..usage import TokenCounts, UsageParser, UsageRecord, typed_turn
from ._lines import Line, ObjectAssembler
from ._output import OutputLine
from ._task import CommandTask

# Bytes of an output line decoded at most: a task_output line shows at most
# MAX_OUTPUT_LINE characters (of up to 4 bytes each).
_OUTPUT_BYTES = 4 * MAX_OUTPUT_LINE


def _output_line(raw: bytes, truncated: bool) -> OutputLine:
    if len(raw) > _OUTPUT_BYTES:
        raw, truncated = raw[:_OUTPUT_BYTES], True
    return raw.decode("utf-8", "replace").rstrip("\r"), truncated


@attrs.define
class StdoutReader:
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

    ctx: CommandTask
    parser: UsageParser = attrs.field(factory=UsageParser)
    # Cleared, never replaced: ``on_stdout`` holds them in locals.
    _pending: dict[tuple[str, str | None, str], list[TokenCounts]] = attrs.field(factory=dict)
    _output: list[OutputLine] = attrs.field(factory=list)
    #: Joins a pretty-printed object over lines (Gemini CLI's ``--output-format json``).
    assembler: ObjectAssembler = attrs.field(factory=ObjectAssembler)

    def __attrs_post_init__(self) -> None:
        # A record with a number out of range stays output, and the task says so once.
        self.parser.on_refused = lambda reason: self.ctx.refuse_usage(reason)
        # JSON that looked like usage in no known format: the task says so once.
        self.parser.on_unrecognised = lambda what: self.ctx.unrecognised_usage(what)

    def on_stdout(self, lines: list[Line]) -> None:
        # This loop is the reader's whole cost (a Claude Code turn is three
        # lines, two of them usage): keep its per-line work small.
        output = self._output
        pending = self._pending
        parser = self.parser
        typed = parser.typed_decode
        assembler = self.assembler
        # ``raw.find(x) >= 0``, not ``x in raw``: CPython's ``bytes.__contains__``
        # first tries ``x`` as an int and formats, raises and clears a TypeError
        # (five tests a turn; bench/HISTORY.md, "Membership with .find() instead of in").
        for raw, truncated in lines:
            if not truncated:
                find = raw.find
                turn = typed_turn(raw) if typed and find(b'"assistant"') >= 0 else None
                if turn is not None:
                    # A turn msgspec reads has a "usage" key: no need to look for one.
                    counted = parser.count_turn(turn)
                    if counted is not None:
                        model, tokens = counted
                        pending.setdefault((model or "", None, "claude-code"), []).append(tokens)
                    continue
                if (
                    find(b'"usage"') >= 0
                    or find(b'"stats"') >= 0
                    or (find(b"\\u00") >= 0 and (find(b"\\u006") >= 0 or find(b"\\u007") >= 0))
                ):
                    # What parse does once the typed decode has said no.
                    records = parser.parse_json(raw)
                    if records is not None:
                        self._add(records)
                        continue
            if assembler.active or raw == b"{" or raw == b"{\r":
                self._assemble(raw, truncated)
            if len(raw) > _OUTPUT_BYTES:
                raw, truncated = raw[:_OUTPUT_BYTES], True
            output.append((raw.decode("utf-8", "replace").rstrip("\r"), truncated))
        self._flush()

    def _assemble(self, raw: bytes, truncated: bool) -> None:
        """Feed a line to the multi-line object being joined; read the object when whole."""
        assembler = self.assembler
        too_large = assembler.too_large
        whole = assembler.feed(raw, truncated)
        if assembler.too_large != too_large:
            self.ctx.refuse_usage(
                f"a multi-line JSON object longer than {assembler.max_bytes:,} bytes "
                "was not read for usage"
            )
        elif whole is not None:
            records = self.parser.parse_json(whole)
            if records:
                self._add(records)

    def on_stderr(self, lines: list[Line]) -> None:
        output = [_output_line(raw, truncated) for raw, truncated in lines]
        self.ctx.output_lines(output, stream="stderr")

    def _add(self, records: list[UsageRecord]) -> None:
        by_model = [record for record in records if record.per_model]
        if by_model:
            self._flush()  # the totals replace what came before them: count that first
            self.ctx.replace_provisional_by_model(
                {record.model or "": (record.tokens, record.cost_usd) for record in by_model},
                source=by_model[0].source,
            )
        for record in records:
            if record.per_model:
                continue
            if record.replaces_provisional or record.cost_usd is not None:
                self._add_reported(record)
            else:
                key = (record.model or "", record.provider, record.source)
                self._pending.setdefault(key, []).append(record.tokens)

    def _add_reported(self, record: UsageRecord) -> None:
        if record.replaces_provisional:
            self._flush()  # the totals replace what came before them: count that first
            self.ctx.replace_provisional_usage(
                model=record.model or "",
                provider=record.provider,
                totals=record.tokens,
                cost_usd=record.cost_usd,
                source=record.source,
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
                source=record.source,
            )

    def _flush(self) -> None:
        if self._output:
            output = self._output[:]
            self._output.clear()
            self.ctx.output_lines(output, stream="stdout")
        if self._pending:
            pending = list(self._pending.items())
            self._pending.clear()
            for (model, provider, source), parts in pending:
                self.ctx.record_usage_batch(
                    model=model, provider=provider, records=parts, source=source
                )
