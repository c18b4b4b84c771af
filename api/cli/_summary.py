"""The table ``runcast run`` prints when it ends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from events import SessionUpdate
from executor import TaskInfo

from ..clients import MAX_DRAWN_ROWS, format_usd, printable
from ..store import UsageTotals

COLUMNS = ("TASK", "STATE", "TRIES", "TIME", "IN", "OUT", "CACHE R", "CACHE W", "COST", "ERROR")
MAX_ERROR = 60
MAX_ID = 40
COST_PLACES = 4


def interrupted_line(usage: UsageTotals) -> str:
    """How much of a session's spend interrupted attempts account for (already in it)."""
    records = f"{usage.records:,} usage record{'' if usage.records == 1 else 's'}"
    spent = f"{usage.total_tokens:,} tokens, {format_usd(usage.cost_usd)}"
    return f"of which interrupted attempts: {spent} ({records}; their tasks ran again)"


def _seconds(task: TaskInfo) -> str:
    if task.started_at is None or task.ended_at is None:
        return "-"
    return f"{(task.ended_at - task.started_at).total_seconds():.1f}s"


def _cost(task: TaskInfo) -> str:
    text = format_usd(task.estimated_cost_usd, places=COST_PLACES)
    return text + "*" if task.unpriced_tokens else text


def _cut(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, escaped (ids and errors come from tasks)."""
    text = printable(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(task: TaskInfo) -> tuple[str, ...]:
    return (
        _cut(task.task_id, MAX_ID),
        task.state,
        str(task.attempts),
        _seconds(task),
        f"{task.input_tokens:,}",
        f"{task.output_tokens:,}",
        f"{task.cache_read_tokens:,}",
        f"{task.cache_write_tokens:,}",
        _cost(task),
        _cut(task.error or "", MAX_ERROR),
    )


def format_summary(
    tasks: Sequence[TaskInfo],
    session: SessionUpdate,
    *,
    interrupted: UsageTotals | None = None,
    terminal: bool = False,
) -> str:
    """A table of every task, then the session's totals (and, for a resumed session,
    the share of them spent by attempts a crash cut short).

    Fixed-width plain text, unless ``terminal``: then the table is drawn with rich
    (imported only then), with what the terminal needs for its styles; a table of
    more than ``MAX_DRAWN_ROWS`` tasks stays plain (rich takes ~0.5 ms a row).
    """
    rows = [_row(task) for task in tasks]
    totals = _totals(tasks, session, interrupted)
    if terminal and len(rows) <= MAX_DRAWN_ROWS:
        from ..clients import data_table, render_text, shown  # rich: only when drawing

        return render_text(data_table(COLUMNS, rows), shown(""), *map(shown, totals))
    return "\n".join([*_plain_table(rows), "", *totals])


def _plain_table(rows: list[tuple[str, ...]]) -> list[str]:
    rows = [COLUMNS, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    numeric = {2, 4, 5, 6, 7, 8}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _totals(
    tasks: Sequence[TaskInfo], session: SessionUpdate, interrupted: UsageTotals | None
) -> list[str]:
    states = Counter(task.state for task in tasks)
    counts = ", ".join(f"{states[s]} {s}" for s in ("completed", "failed", "cancelled"))
    others = sum(n for s, n in states.items() if s not in ("completed", "failed", "cancelled"))
    if others:
        counts += f", {others} unfinished"
    lines = [f"{len(tasks)} tasks: {counts}"]
    lines.append(
        f"tokens: {session.total_tokens:,} (in {session.input_tokens:,}, "
        f"out {session.output_tokens:,}, cache read {session.cache_read_tokens:,}, "
        f"cache write {session.cache_write_tokens:,})"
    )
    cost = f"cost: {format_usd(session.estimated_cost_usd, places=COST_PLACES)}"
    if session.unpriced_tokens:
        cost += f" (* {session.unpriced_tokens:,} tokens of unpriced models not included)"
    if session.budget_usd is not None:
        cost += f" of a {format_usd(session.budget_usd)} budget"
    lines.append(cost)
    if interrupted is not None and interrupted.records:
        lines.append(interrupted_line(interrupted))
    lines.append(f"duration: {session.duration_seconds}s  session: {printable(session.session_id)}")
    return lines
