"""Text the command line writes: shown as data, never obeyed by a terminal or spreadsheet.

Task ids, models, providers, errors and server messages come from tasks, job files
and peers. Written raw, ``"\\x1b]0;PWNED\\x07\\x1b[2J"`` retitles the window and
clears the screen, a right-to-left override reorders what a reader sees, and a CSV
cell starting with ``=`` is a formula. :func:`printable` writes such characters as
visible escapes (``\\x1b``, ``\\u202e``), the way ``repr`` would.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

# C0 controls, DEL and C1 controls: a terminal acts on them (ESC starts a sequence).
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# Bidirectional embeddings, overrides, isolates and marks ("Trojan Source").
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
# Lone surrogates (JSON's "\ud800" decodes to one) cannot even be encoded for output.
_SURROGATES = range(0xD800, 0xE000)
_NAMED = {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}

_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in _CONTROLS},
    **{code: f"\\u{code:04x}" for code in (*_BIDI, *_SURROGATES)},
    **_NAMED,
}

#: Tables longer than this are printed as plain columns even on a terminal: rich lays
#: a table out at ~0.5 ms of CPU a row (50 ms for 100 rows, 5 s for 10,000 tasks),
#: plain columns at ~7 us (bench/README.md, section 7).
MAX_DRAWN_ROWS = 100

# OWASP's CSV-injection list: a cell starting with one of these may be run as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """``text`` with every control, bidi and surrogate character escaped visibly.

    Tab, newline and carriage return are escaped too (``\\t``, ``\\n``, ``\\r``):
    one value stays on one line and in its column. Backslashes are left alone, so
    applying it twice changes nothing more.
    """
    # Every escaped character is non-printable to Python: the common case is one scan.
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)


def printable_lines(text: str) -> str:
    """Like :func:`printable`, but keeping line breaks (tracebacks, multi-line notes)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def csv_cell(value: object) -> object:
    """A CSV value a spreadsheet shows as text: escaped, and never taken for a formula.

    Text starting with ``=``, ``+``, ``-`` or ``@`` (or tab, CR) gets a leading
    ``'`` (OWASP's advice); numbers and empty cells are written as they are.
    """
    if not isinstance(value, str):
        return value
    # Checked before escaping: a leading tab or CR is escaped as well as quoted.
    text = printable(value)
    return "'" + text if value.startswith(_FORMULA_STARTS) else text


def json_text(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """``value`` as JSON, every character outside printable ASCII escaped.

    ``json.dumps`` already escapes C0 controls and (``ensure_ascii``) everything
    past ASCII; DEL is valid raw JSON, so it is written as ``\\u007f``: the same
    JSON value, nothing raw for a terminal.
    """
    return json.dumps(value, indent=indent, sort_keys=sort_keys).replace("\x7f", "\\u007f")


def draws_table(out: TextIO, rows: int) -> bool:
    """Whether a table of ``rows`` rows is drawn with rich on ``out``: on a terminal, and
    not longer than ``MAX_DRAWN_ROWS``. Otherwise plain columns, which scripts read."""
    return rows <= MAX_DRAWN_ROWS and out.isatty()
