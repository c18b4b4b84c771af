"""Taking back a session that a run claimed but could never serve (its port was taken).

``runcast run`` claims its session before it binds; a bind that fails must leave
the store as it was, so that the next run neither resumes a session that never
ran nor shows one as ``running``.
"""

from __future__ import annotations

import sqlite3

from ._lease import SessionLease, release_lease
from ._store import SessionStore

#: Every table with rows of a session; ``sessions`` itself goes last.
_SESSION_TABLES = (
    "tasks",
    "usage",
    "events",
    "controls",
    "interrupted_attempts",
    "task_commands",
)


def discard_unserved(store: SessionStore, lease: SessionLease, *, resumed: bool) -> None:
    """Undo the claim of a run that never served: a new session goes, a resumed one is let go.

    A resumed session keeps what earlier runs recorded (its cut-short attempts were
    cut short whichever run says so); a new one had nothing but what this run
    wrote while starting, and is deleted with its lease in one transaction.
    """
    if resumed:
        release_lease(store, lease)
        return
    session_id = lease.session_id

    def delete(conn: sqlite3.Connection) -> None:
        for table in _SESSION_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
        conn.execute("DELETE FROM session_leases WHERE session_id = ?", (session_id,))
        conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))

    store._transaction(delete)
    store.write_guard = None
