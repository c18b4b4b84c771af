"""What command each job-file task of a session ran, as a hash (schema v6).

``runcast run --retry-failed`` compares them with the job file's commands now:
a task whose command changed since is not silently run as if it were the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from ._store import SessionStore


def record_command_hashes(store: SessionStore, session_id: str, hashes: Mapping[str, str]) -> None:
    """Remember each task's command hash for ``session_id`` (the newest run's wins)."""
    rows = [(session_id, task_id, digest) for task_id, digest in hashes.items()]

    def apply(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO task_commands (session_id, task_id, command_hash) "
            "VALUES (?, ?, ?)",
            rows,
        )

    store._transaction(apply)


def command_hashes(store: SessionStore, session_id: str) -> dict[str, str]:
    """The command hash of each task the session recorded one for."""
    rows = store.conn.execute(
        "SELECT task_id, command_hash FROM task_commands WHERE session_id = ?", (session_id,)
    ).fetchall()
    return {str(task_id): str(digest) for task_id, digest in rows}
