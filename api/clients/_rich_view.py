"""What a terminal shows, drawn with rich: tables, ``status``'s snapshot, ``watch``'s screen.

Only code that is about to draw on a terminal imports this module: importing rich
costs a client command 30-40 ms of start-up (bench/README.md, section 7), and
``pause`` or a piped ``status`` draw nothing. Piped output stays the plain text of
``_view`` and the commands' own tables, column for column.

Every value from a server, task or store goes in as a ``Text`` of its ``printable``
form, never as a string: rich would read ``"[bold]"`` in a string as markup, and it
passes ESC through to the terminal, so ``printable`` is still what keeps a task from
driving it. The consoles parse no markup or emoji codes either.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ._terminal import printable
from ._view import (
    SessionView,
    TaskLine,
    cost_text,
    elapsed_text,
    session_parts,
    short_name,
)

if TYPE_CHECKING:
    from rich.live import Live

#: Columns drawn right-aligned, by header, whichever command's table they are in.
NUMERIC_HEADERS = frozenset(
    {
        "ATT",
        "ATTEMPTS",
        "TRIES",
        "ELAPSED",
        "TIME",
        "DURATION",
        "IN",
        "OUT",
        "CACHE R",
        "CACHE W",
        "CACHE R/W",
        "TOKENS",
        "INTERRUPTED TOKENS",
        "UNPRICED TOKENS",
        "COST",
    }
)
STATE_STYLES = {
    "queued": "dim",
    "running": "cyan",
    "retrying": "yellow",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "interrupted": "yellow",
    "finished": "green",
}
#: The column (a task's state, a stored session's status) coloured by ``STATE_STYLES``.
STATE_HEADERS = frozenset({"STATE", "STATUS"})
SEPARATOR = " | "


def terminal_console(out: TextIO, *, width: int | None = None) -> Console:
    """A console writing to ``out`` as to a terminal, reading no markup in strings."""
    return Console(
        file=out,
        force_terminal=True,
        markup=False,
        emoji=False,
        highlight=False,
        width=width,
    )


def shown(value: object, style: str = "") -> Text:
    """``value`` as text that reaches the terminal as data: escaped, never markup."""
    return Text(printable(str(value)), style=style)


def data_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """A table of ``rows`` under ``headers``; numeric columns right-aligned.

    Long cells fold onto more lines rather than being cut: a narrow terminal hides
    nothing (ids and errors are what an operator copies).
    """
    # Two spaces between columns (padding and the box's blank divider), as the plain tables.
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for header in headers:
        numeric = header in NUMERIC_HEADERS
        # Numbers and states keep their width; text columns wrap to make room.
        table.add_column(
            header,
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=numeric or header in STATE_HEADERS,
        )
    state = next((i for i, header in enumerate(headers) if header in STATE_HEADERS), None)
    for row in rows:
        cells = [
            shown(cell, STATE_STYLES.get(str(cell), "") if i == state else "")
            for i, cell in enumerate(row)
        ]
        table.add_row(*cells)
    return table


def print_table(
    out: TextIO, headers: Sequence[str], rows: Iterable[Sequence[object]], *, indent: int = 0
) -> None:
    """:func:`data_table` drawn on ``out``, ``indent`` columns in."""
    terminal_console(out).print(Padding(data_table(headers, rows), (0, 0, 0, indent), expand=False))


def render_text(*renderables: RenderableType, width: int | None = None) -> str:
    """What a terminal would be sent for ``renderables``, one under the other, as one
    string (styles included)."""
    buffer = io.StringIO()
    terminal_console(buffer, width=width).print(Group(*renderables))
    return buffer.getvalue().rstrip("\n")


# -- status and watch ----------------------------------------------------------------


def session_text(data: dict[str, Any], duration: float, *, stale: bool = False) -> Text:
    """The session line of ``status`` and ``watch``, with the state and cost marked."""
    parts = session_parts(data, duration)
    text = Text()
    for index, part in enumerate(parts):
        if index:
            text.append(SEPARATOR, style="dim")
        style = {"PAUSED": "bold yellow", "live": "green"}.get(part, "")
        text.append_text(shown(part, "bold" if index == 2 else style))
    if stale:
        text.append_text(shown("  [stale]", "yellow"))
    return text


def _task_cells(row: TaskLine, now: datetime) -> list[Text]:
    return [
        shown(row.task_id),
        shown(short_name(row.name)),
        shown(elapsed_text(row, now)),
        shown(f"{row.input_tokens:,}"),
        shown(f"{row.output_tokens:,}"),
        shown(f"{row.cache_read_tokens:,}/{row.cache_write_tokens:,}"),
        shown(cost_text(row)),
    ]


_TASK_HEADERS = ("TASK", "NAME", "ELAPSED", "IN", "OUT", "CACHE R/W", "COST")


def status_view(
    session: dict[str, Any], duration: float, rows: list[TaskLine], now: datetime
) -> Group:
    """``status`` on a terminal: the session line, every task, then their errors.

    The errors follow the table, one task's per paragraph, rather than in a column:
    an error is long free text and a column of it would squeeze every other one.
    """
    parts: list[RenderableType] = [session_text(session, duration), Text("")]
    if not rows:
        return Group(*parts, Text("no tasks"))
    table = data_table((*_TASK_HEADERS[:2], "STATE", "ATT", *_TASK_HEADERS[2:]), [])
    for row in rows:
        cells = _task_cells(row, now)
        state = shown(row.state, STATE_STYLES.get(row.state, ""))
        table.add_row(*cells[:2], state, shown(row.attempts), *cells[2:])
    parts.append(table)
    failed = [row for row in rows if row.error]
    if failed:
        parts.append(Text(""))
    parts.extend(
        Text.assemble(shown(row.task_id, "bold"), ": ", shown(row.error, "red")) for row in failed
    )
    return Group(*parts)


def watch_view(heading: str, view: SessionView, now: float, moment: datetime, height: int) -> Group:
    """``watch``'s screen: its heading, the session line, as many running tasks as fit."""
    parts: list[RenderableType] = [shown(heading, "bold")]
    if view.session is not None:
        parts.append(session_text(view.session, view.duration(now), stale=view.stale))
    running = view.running()
    parts.append(shown(f"running tasks: {len(running)}"))
    # Four lines besides the rows: the table's header and rule, "... and N more", and
    # one to spare (a long session line wraps).
    shown_rows = running[: max(0, height - len(parts) - 4)]
    if shown_rows:
        table = data_table(_TASK_HEADERS, [])
        for row in shown_rows:
            table.add_row(*_task_cells(row, moment))
        parts.append(table)
    if len(shown_rows) < len(running):
        parts.append(shown(f"... and {len(running) - len(shown_rows)} more", "dim"))
    return Group(*parts)


def open_live(out: TextIO) -> Live:
    """A live display on ``out``, redrawn only when told (no refresh thread: the trio
    loop draws), leaving ``sys.stdout`` and ``sys.stderr`` alone."""
    from rich.live import Live  # only watch needs it: status does not pay for its import

    live = Live(
        console=terminal_console(out),
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    live.start()
    return live
