"""Packing output lines into as few ``task_output`` events as their size allows."""

from __future__ import annotations

from collections.abc import Iterable

from events import MAX_OUTPUT_LINE, MAX_OUTPUT_TEXT, OutputStream, TaskOutput, truncate

OutputLine = tuple[str, bool]
"""A line of output without its newline, and whether it was cut before it got here."""


def pack_output(
    task_id: str, stream: OutputStream, lines: Iterable[OutputLine]
) -> tuple[list[TaskOutput], int]:
    """The events carrying ``lines`` in order, and how many of the lines were cut.

    Each line is cut to ``MAX_OUTPUT_LINE`` characters; consecutive lines share
    one event while its text (lines and the newlines between them) stays within
    ``MAX_OUTPUT_TEXT`` characters.
    """
    events: list[TaskOutput] = []
    texts: list[str] = []
    size = 0  # characters in texts plus the newlines that will join them
    any_cut = False
    cut_total = 0
    for text, cut in lines:
        if len(text) > MAX_OUTPUT_LINE:
            text, cut = truncate(text, MAX_OUTPUT_LINE), True
        if texts and size + 1 + len(text) > MAX_OUTPUT_TEXT:
            events.append(_event(task_id, stream, texts, any_cut))
            texts, size, any_cut = [], -1, False
        elif not texts:
            size = -1
        texts.append(text)
        size += 1 + len(text)
        if cut:
            any_cut = True
            cut_total += 1
    if texts:
        events.append(_event(task_id, stream, texts, any_cut))
    return events, cut_total


def _event(task_id: str, stream: OutputStream, texts: list[str], cut: bool) -> TaskOutput:
    return TaskOutput(
        task_id=task_id, stream=stream, line="\n".join(texts), truncated=cut, lines=len(texts)
    )
