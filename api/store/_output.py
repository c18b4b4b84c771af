"""A task's output as the store's event history holds it (``runcast logs --store``).

Read-only: ``task_output`` events of one task of one session, oldest first, a chunk
of rows per query so a long history is never held at once.  The history keeps a
session's newest events only (``history_keep``): :func:`output_pruned` says
whether a task's oldest ones are gone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Final

import attrs

from ._exceptions import StoreError
from ._store import SessionStore

CHUNK: Final = 500
_OUTPUT_ROWS: Final = (
    "SELECT seq, wire FROM events WHERE session_id = ? AND seq > ? "
    "AND json_extract(wire, '$.event') = 'task_output' "
    "AND json_extract(wire, '$.task_id') = ? ORDER BY seq LIMIT ?"
)


class UnknownTaskError(StoreError):
    """The session holds no task with that id."""


@attrs.frozen
class StoredOutputLine:
    """One line a task wrote, as its stored ``task_output`` event holds it."""

    seq: int
    time: str
    stream: str
    text: str
    truncated: bool


def session_of_task(store: SessionStore, task_id: str) -> str:
    """The newest session of the store that ran ``task_id``."""
    row = store.conn.execute(
        "SELECT t.session_id FROM tasks t JOIN sessions s ON s.session_id = t.session_id "
        "WHERE t.task_id = ? ORDER BY s.created_at DESC, s.rowid DESC LIMIT 1",
        (task_id,),
    ).fetchone()
    if row is None:
        raise UnknownTaskError(f"no session in store {store.path} ran a task {task_id!r}")
    return str(row[0])


def check_task(store: SessionStore, session_id: str, task_id: str) -> None:
    row = store.conn.execute(
        "SELECT 1 FROM tasks WHERE session_id = ? AND task_id = ?", (session_id, task_id)
    ).fetchone()
    if row is None:
        raise UnknownTaskError(f"session {session_id} has no task {task_id!r}")


def output_pruned(store: SessionStore, session_id: str, task_id: str) -> bool:
    """Whether the task started but the history no longer holds its start: its
    oldest events, output among them, went to ``history_keep``."""
    row = store.conn.execute(
        "SELECT started_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM events "
        "WHERE session_id = ? AND json_extract(wire, '$.event') = 'task_started' "
        "AND json_extract(wire, '$.task_id') = ?) FROM tasks WHERE session_id = ? AND task_id = ?",
        (session_id, task_id, session_id, task_id),
    ).fetchone()
    return bool(row is not None and row[0])


def task_output(store: SessionStore, session_id: str, task_id: str) -> Iterator[StoredOutputLine]:
    """Every stored output line of the task, oldest first."""
    after = 0
    while True:
        try:
            rows = store.conn.execute(_OUTPUT_ROWS, (session_id, after, task_id, CHUNK)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the history of store {store.path}: {exc}") from exc
        for seq, wire in rows:
            yield from _lines(int(seq), wire)
        if len(rows) < CHUNK:
            return
        after = int(rows[-1][0])


def _lines(seq: int, wire: str) -> Iterator[StoredOutputLine]:
    try:
        frame = json.loads(wire)
        data = frame["data"]
        text, stream, time = data["line"], data.get("stream", "stdout"), frame["time"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"stored event {seq} is not a task_output frame: {exc!r}") from exc
    truncated = bool(data.get("truncated", False))
    for line in str(text).split("\n"):
        yield StoredOutputLine(seq, str(time), str(stream), line, truncated)
