"""A stdout that is a terminal, and reading what rich drew on it.

``Terminal`` says it is a TTY, as ``sys.stdout`` on an operator's screen does, so
the commands draw with rich; ``as_terminal`` puts one in place of ``sys.stdout``
with a fixed size (rich reads ``COLUMNS`` and ``LINES``), so a table's layout does
not depend on the terminal the tests run in.

``without_drawing`` removes the sequences rich itself sends (styles, hiding and
showing the cursor, the live display's erase-and-move-up) and nothing else: what
is left must hold no raw control character, and a task's own ``ESC [ 2 J`` or OSC
title is not on that list, so it would still be caught.
"""

from __future__ import annotations

import io
import re
import sys

import pytest

# SGR styles, cursor hide/show, erase line, cursor up, carriage return (live redraw).
_RICH_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[2K|\x1b\[[0-9]*A|\r")


class Terminal(io.StringIO):
    """A ``StringIO`` that is a terminal to whoever asks."""

    def isatty(self) -> bool:
        return True


def as_terminal(monkeypatch: pytest.MonkeyPatch, *, width: int = 160, height: int = 40) -> Terminal:
    """``sys.stdout`` replaced by a ``width`` x ``height`` terminal for this test."""
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("LINES", str(height))
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    return terminal


def without_drawing(text: str) -> str:
    """``text`` without rich's own terminal sequences."""
    return _RICH_SEQUENCES.sub("", text)


def styled(text: str) -> bool:
    """Whether ``text`` carries styles (an SGR sequence): drawn by rich, not plain."""
    return re.search(r"\x1b\[[0-9;]+m", text) is not None
