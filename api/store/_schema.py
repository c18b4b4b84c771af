"""The store's schema, as numbered migrations applied in order.

``PRAGMA user_version`` holds the applied version. A database written by a newer
runcast (a higher version than we know) is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3

from ._exceptions import StoreError

# Version 1: sessions, tasks, usage and the event history.
_V1 = """
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    job_key TEXT,
    job_path TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    duration_seconds REAL NOT NULL DEFAULT 0,
    tasks_completed INTEGER NOT NULL DEFAULT 0,
    tasks_failed INTEGER NOT NULL DEFAULT 0,
    tasks_cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_job ON sessions (job_key, status);
CREATE TABLE tasks (
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    task_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    ended_at TEXT,
    duration_seconds REAL,
    exit_code INTEGER,
    error TEXT,
    PRIMARY KEY (session_id, task_id)
);
CREATE TABLE usage (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_usd REAL
);
CREATE INDEX usage_by_session ON usage (session_id, task_id);
CREATE TABLE events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    event TEXT NOT NULL,
    task_id TEXT NOT NULL,
    wire TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""

# Version 2: where each cost came from and which provider; pause/resume/budget
# changes with who and why; the session's pause and budget state for restarts.
_V2 = """
ALTER TABLE usage ADD COLUMN provider TEXT;
ALTER TABLE usage ADD COLUMN cost_source TEXT NOT NULL DEFAULT 'unpriced';
UPDATE usage SET cost_source = 'computed' WHERE cost_usd IS NOT NULL;
ALTER TABLE sessions ADD COLUMN is_paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN budget_usd REAL;
CREATE TABLE controls (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    budget_usd REAL
);
"""

# Version 3: accounting by attempt. Each usage row says which attempt of its task
# spent it (NULL: recorded before v3 by a task that ran more than once, so not
# known) and how many source records it sums; attempts that a crash or a stop
# cut short, and that a resumed run ran again, are listed in interrupted_attempts;
# a task cancelled while running keeps that attempt's number. The usage index
# leads with the attempt's key. The history keeps each event's wire text only
# (its time, name and task id are in it: json_extract(wire, '$.time')), not
# stored twice; generated columns for them would cost every insert. (A rowid
# table: WITHOUT ROWID saves one b-tree per row on small events, but loses more
# once some events are long output lines. Both measured:
# bench/HISTORY.md#generated-columns-for-historys-time-name-and-task-id-dropped and
# bench/HISTORY.md#without-rowid-history-dropped.)
_V3 = """
ALTER TABLE usage ADD COLUMN attempt INTEGER;
UPDATE usage SET attempt = 1 WHERE EXISTS (
    SELECT 1 FROM tasks WHERE tasks.session_id = usage.session_id
        AND tasks.task_id = usage.task_id AND tasks.attempts <= 1
);
ALTER TABLE usage ADD COLUMN records INTEGER NOT NULL DEFAULT 1;
DROP INDEX usage_by_session;
CREATE INDEX usage_by_attempt ON usage (session_id, task_id, attempt);
ALTER TABLE tasks ADD COLUMN cancelled_attempt INTEGER;
CREATE TABLE interrupted_attempts (
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    marked_at TEXT NOT NULL,
    PRIMARY KEY (session_id, task_id, attempt)
) WITHOUT ROWID;
CREATE TABLE events_v3 (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    wire TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
INSERT INTO events_v3 (session_id, seq, wire) SELECT session_id, seq, wire FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
"""

# Version 4: which process runs each session (``_store_lease``): one row while
# a run holds it, deleted when that run ends cleanly. Times are the owner's
# wall clock (seconds since the epoch), the one clock two processes share; the
# owner also says how long its heartbeat is good for (``timeout_seconds``), so
# a process with other settings judges it by the owner's own terms. ``pid_scope``
# says where ``pid`` names a process (this boot, this pid namespace): only
# there can a dead pid end a lease before its heartbeat times out.
_V4 = """
CREATE TABLE session_leases (
    session_id TEXT PRIMARY KEY REFERENCES sessions (session_id),
    owner_token TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    pid_scope TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    timeout_seconds REAL NOT NULL
) WITHOUT ROWID;
"""

# Version 5: which output format each usage row was read from (``TaskUsage.source``:
# "claude-code", "codex-exec", ...); "" for rows recorded before, or through the API.
_V5 = """
ALTER TABLE usage ADD COLUMN source TEXT NOT NULL DEFAULT '';
"""

# Version 6: a hash of each job-file task's command as a session ran it
# (``_commands``), so ``runcast run --retry-failed`` can say which changed since.
# Stores written before have none: their tasks read as "not known", not as changed.
# Controls gain the new concurrency of a ``set_concurrency`` (NULL for the others).
_V6 = """
ALTER TABLE controls ADD COLUMN concurrency INTEGER;
CREATE TABLE task_commands (
    session_id TEXT NOT NULL REFERENCES sessions (session_id),
    task_id TEXT NOT NULL,
    command_hash TEXT NOT NULL,
    PRIMARY KEY (session_id, task_id)
) WITHOUT ROWID;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the database's version, each in its own transaction."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {current} is newer than this runcast knows "
            f"({SCHEMA_VERSION}); upgrade runcast"
        )
    for version in range(current + 1, target + 1):
        apply_migration(conn, version)
    return schema_version(conn)


def apply_migration(conn: sqlite3.Connection, version: int) -> None:
    """Migrate to ``version`` from the one before, unless another process did meanwhile.

    Two processes opening an old store at once both read its old version; the
    write lock (``BEGIN IMMEDIATE``) lets one migrate while the other waits,
    then the other, reading the version again under that lock, skips it
    (instead of failing on a table that now exists).
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) < version:
                for statement in _statements(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"migration to schema version {version} failed: {exc}") from exc


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
