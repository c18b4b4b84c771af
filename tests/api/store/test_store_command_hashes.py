"""Schema v6: each job-file task's command hash per session (``--retry-failed``'s check)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from api.store import SessionStore, command_hashes, record_command_hashes
from api.store._schema import SCHEMA_VERSION, migrate, schema_version


def test_hashes_are_kept_per_session_and_the_newest_run_wins(tmp_path: Path) -> None:
    store = SessionStore.open(tmp_path / "s.db")
    store.begin_session("s1", job_key="k")
    record_command_hashes(store, "s1", {"a": "h1", "b": "h2"})
    record_command_hashes(store, "s1", {"a": "h3"})
    assert command_hashes(store, "s1") == {"a": "h3", "b": "h2"}
    assert command_hashes(store, "other") == {}
    store.close()


def test_a_version_five_store_opens_with_no_hashes(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=5)
    conn.execute("INSERT INTO sessions (session_id, created_at) VALUES ('old', 'then')")
    conn.close()
    store = SessionStore.open(path)
    assert schema_version(store.conn) == SCHEMA_VERSION == 6
    assert command_hashes(store, "old") == {}
    store.close()
